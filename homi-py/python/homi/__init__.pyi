# Types of the `homi` package: the native classes of `homi._homi`, and
# `AsyncMemory`, a Python class over the native one with the same methods.
from datetime import date, datetime
from typing import Any, Dict, List, Literal, Optional, Union

from homi import _homi
from homi._homi import Auth as Auth
from homi._homi import Chat as Chat
from homi._homi import ChatStream as ChatStream
from homi._homi import Memory as Memory
from homi._homi import __version__ as __version__
from homi._mem0 import import_mem0 as import_mem0
from homi.errors import HomiError as HomiError
from homi.errors import ValidationError as ValidationError
from homi.errors import ConfigError as ConfigError
from homi.errors import NotFoundError as NotFoundError
from homi.errors import ConflictError as ConflictError
from homi.errors import AuthError as AuthError
from homi.errors import ForbiddenError as ForbiddenError
from homi.errors import RateLimitedError as RateLimitedError
from homi.errors import ProviderError as ProviderError
from homi.errors import ProviderNotConfiguredError as ProviderNotConfiguredError
from homi.errors import ProviderTimeoutError as ProviderTimeoutError
from homi.errors import UnavailableError as UnavailableError
from homi.errors import StorageError as StorageError
from homi.errors import MemoryNotFoundError as MemoryNotFoundError
from homi.errors import RateLimitError as RateLimitError
from homi.errors import ConfigurationError as ConfigurationError
from homi.errors import AuthenticationError as AuthenticationError
from homi.errors import LLMError as LLMError
from homi.errors import EmbeddingError as EmbeddingError
from homi.errors import NetworkError as NetworkError
from homi.errors import VectorStoreError as VectorStoreError
from homi.errors import DatabaseError as DatabaseError

class AsyncMemory:
    """mem0's AsyncMemory on Homi: the methods of Memory, as coroutines run by
    Homi's Rust runtime; `async with` closes it."""

    def __init__(self, _native: Optional[_homi.AsyncMemory] = None) -> None: ...
    @classmethod
    def from_config(cls, config: Any) -> "AsyncMemory": ...
    async def add(
        self,
        messages: Union[str, Dict[str, Any], List[Dict[str, Any]]],
        *,
        user_id: Optional[Union[str, int]] = None,
        agent_id: Optional[Union[str, int]] = None,
        run_id: Optional[Union[str, int]] = None,
        metadata: Optional[Dict[str, Any]] = None,
        filters: Optional[Dict[str, Any]] = None,
        infer: bool = True,
        memory_type: Optional[Literal["procedural_memory"]] = None,
        prompt: Optional[str] = None,
        timestamp: Optional[Union[datetime, str, int, float]] = None,
        expiration_date: Optional[Union[str, date]] = None,
    ) -> Dict[str, Any]: ...
    async def search(
        self,
        query: str,
        *,
        user_id: Optional[Union[str, int]] = None,
        agent_id: Optional[Union[str, int]] = None,
        run_id: Optional[Union[str, int]] = None,
        limit: Optional[int] = None,
        filters: Optional[Dict[str, Any]] = None,
        threshold: Optional[float] = None,
        top_k: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        include_superseded: bool = False,
        rerank: bool = False,
        mode: Optional[Literal["hybrid", "semantic", "keyword"]] = None,
        explain: bool = False,
        reference_date: Optional[Union[str, date, int]] = None,
        show_expired: bool = False,
    ) -> Dict[str, Any]: ...
    async def get(self, memory_id: str) -> Optional[Dict[str, Any]]: ...
    async def get_all(
        self,
        *,
        user_id: Optional[Union[str, int]] = None,
        agent_id: Optional[Union[str, int]] = None,
        run_id: Optional[Union[str, int]] = None,
        filters: Optional[Dict[str, Any]] = None,
        limit: Optional[int] = None,
        top_k: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        include_superseded: bool = False,
        show_expired: bool = False,
    ) -> Dict[str, Any]: ...
    async def update(
        self,
        memory_id: str,
        data: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        text: Optional[str] = None,
        expiration_date: Optional[Union[str, date]] = ...,
    ) -> Dict[str, Any]: ...
    async def delete(self, memory_id: str) -> Dict[str, Any]: ...
    async def delete_all(
        self,
        user_id: Optional[Union[str, int]] = None,
        agent_id: Optional[Union[str, int]] = None,
        run_id: Optional[Union[str, int]] = None,
        *,
        filters: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]: ...
    async def history(self, memory_id: str) -> List[Dict[str, Any]]: ...
    async def reset(self) -> None: ...
    def close(self) -> None: ...
    async def __aenter__(self) -> "AsyncMemory": ...
    async def __aexit__(self, *exc: Any) -> bool: ...

__all__ = [
    "Memory",
    "AsyncMemory",
    "Chat",
    "ChatStream",
    "Auth",
    "import_mem0",
    "__version__",
    "HomiError",
    "ValidationError",
    "ConfigError",
    "NotFoundError",
    "ConflictError",
    "AuthError",
    "ForbiddenError",
    "RateLimitedError",
    "ProviderError",
    "ProviderNotConfiguredError",
    "ProviderTimeoutError",
    "UnavailableError",
    "StorageError",
    "MemoryNotFoundError",
    "RateLimitError",
    "ConfigurationError",
    "AuthenticationError",
    "LLMError",
    "EmbeddingError",
    "NetworkError",
    "VectorStoreError",
    "DatabaseError",
]
