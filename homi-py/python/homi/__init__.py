"""Homi: persistent memory for chatbots, in Rust.

`homi.Memory` is mem0's Memory: replace `from mem0 import Memory` with
`from homi import Memory` and the same calls work (`add`, `search`, `get`,
`get_all`, `update`, `delete`, `delete_all`, `history`, `reset`,
`Memory.from_config`), with mem0's return shapes. `homi.AsyncMemory` has the
same methods as coroutines, run by Homi's Rust runtime. `homi.Chat` runs
memory-augmented turns (plain, or streamed as an iterator or an async
iterator) and `homi.Auth` accounts, tokens and service API keys.
`homi.import_mem0(config)` copies what mem0 stored with that config.
"""

from homi import _homi
from homi._homi import Auth, Chat, ChatStream, Memory, __version__
from homi._mem0 import import_mem0
from homi.errors import *  # noqa: F401,F403
from homi.errors import __all__ as _errors


class AsyncMemory:
    """mem0's AsyncMemory on Homi: the methods of Memory, as coroutines.

    Each coroutine hands its call to Homi's Rust runtime when it is awaited
    (no thread per call), so it can be created anywhere and awaited in any
    event loop."""

    def __init__(self, _native=None):
        self._native = _native if _native is not None else _homi.AsyncMemory()

    @classmethod
    def from_config(cls, config):
        return cls(_homi.AsyncMemory.from_config(config))

    async def add(self, messages, **kwargs):
        return await self._native.add(messages, **kwargs)

    async def search(self, query, **kwargs):
        return await self._native.search(query, **kwargs)

    async def get(self, memory_id):
        return await self._native.get(memory_id)

    async def get_all(self, **kwargs):
        return await self._native.get_all(**kwargs)

    async def update(self, memory_id, data=None, metadata=None, **kwargs):
        return await self._native.update(memory_id, data, metadata, **kwargs)

    async def delete(self, memory_id):
        return await self._native.delete(memory_id)

    async def delete_all(self, user_id=None, agent_id=None, run_id=None, **kwargs):
        return await self._native.delete_all(user_id, agent_id, run_id, **kwargs)

    async def history(self, memory_id):
        return await self._native.history(memory_id)

    async def reset(self):
        return await self._native.reset()

    def close(self):
        """Closes the store's connections; a later call opens them again."""
        self._native.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        self.close()
        return False


__all__ = ["Memory", "AsyncMemory", "Chat", "ChatStream", "Auth", "import_mem0", "__version__", *_errors]
