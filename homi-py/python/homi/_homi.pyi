from datetime import date, datetime
from typing import Any, Dict, List, Literal, Optional, Union, final

_Message = Dict[str, Any]
_Messages = Union[str, _Message, List[_Message]]
_Filters = Dict[str, Any]
# mem0 takes integer ids too (made strings).
_Id = Union[str, int]
# mem0's dates: a date (or datetime) or "YYYY-MM-DD".
_Date = Union[str, date]

__version__: str

def read_mem0_history(config: Dict[str, Any]) -> List[Dict[str, Any]]: ...
__all__ = ["Memory", "AsyncMemory", "Chat", "ChatStream", "Auth", "__version__", "read_mem0_history"]

@final
class Memory:
    """mem0's Memory on Homi: blocking methods, mem0's return shapes."""

    def __init__(self) -> None: ...
    @classmethod
    def from_config(cls, config: Any) -> "Memory": ...
    def add(
        self,
        messages: _Messages,
        *,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        metadata: Optional[Dict[str, Any]] = None,
        filters: Optional[_Filters] = None,
        infer: bool = True,
        memory_type: Optional[Literal["procedural_memory"]] = None,
        prompt: Optional[str] = None,
        timestamp: Optional[Union[datetime, str, int, float]] = None,
        expiration_date: Optional[_Date] = None,
    ) -> Dict[str, Any]: ...
    def search(
        self,
        query: str,
        *,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        limit: Optional[int] = None,
        filters: Optional[_Filters] = None,
        threshold: Optional[float] = None,
        top_k: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        include_superseded: bool = False,
        rerank: bool = False,
        mode: Optional[Literal["hybrid", "semantic", "keyword"]] = None,
        explain: bool = False,
        reference_date: Optional[Union[_Date, int]] = None,
        show_expired: bool = False,
    ) -> Dict[str, Any]: ...
    def get(self, memory_id: str) -> Optional[Dict[str, Any]]: ...
    def get_all(
        self,
        *,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        filters: Optional[_Filters] = None,
        limit: Optional[int] = None,
        top_k: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        include_superseded: bool = False,
        show_expired: bool = False,
    ) -> Dict[str, Any]: ...
    def update(
        self,
        memory_id: str,
        data: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        text: Optional[str] = None,
        expiration_date: Optional[_Date] = ...,
    ) -> Dict[str, Any]: ...
    def delete(self, memory_id: str) -> Dict[str, Any]: ...
    def delete_all(
        self,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        *,
        filters: Optional[_Filters] = None,
    ) -> Dict[str, Any]: ...
    def history(self, memory_id: str) -> List[Dict[str, Any]]: ...
    def reset(self) -> None: ...
    def import_mem0_points(
        self, points: List[Dict[str, Any]], history: List[Dict[str, Any]], mem0_config: Optional[Dict[str, Any]] = None
    ) -> Dict[str, Any]: ...
    def import_mem0_postgres(self, mem0_config: Dict[str, Any]) -> Dict[str, Any]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Memory": ...
    def __exit__(self, *exc: Any) -> bool: ...

@final
class AsyncMemory:
    """mem0's AsyncMemory on Homi: the same methods, as coroutines."""

    def __init__(self) -> None: ...
    @classmethod
    def from_config(cls, config: Any) -> "AsyncMemory": ...
    async def add(
        self,
        messages: _Messages,
        *,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        metadata: Optional[Dict[str, Any]] = None,
        filters: Optional[_Filters] = None,
        infer: bool = True,
        memory_type: Optional[Literal["procedural_memory"]] = None,
        prompt: Optional[str] = None,
        timestamp: Optional[Union[datetime, str, int, float]] = None,
        expiration_date: Optional[_Date] = None,
    ) -> Dict[str, Any]: ...
    async def search(
        self,
        query: str,
        *,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        limit: Optional[int] = None,
        filters: Optional[_Filters] = None,
        threshold: Optional[float] = None,
        top_k: Optional[int] = None,
        as_of: Optional[Union[datetime, str]] = None,
        include_superseded: bool = False,
        rerank: bool = False,
        mode: Optional[Literal["hybrid", "semantic", "keyword"]] = None,
        explain: bool = False,
        reference_date: Optional[Union[_Date, int]] = None,
        show_expired: bool = False,
    ) -> Dict[str, Any]: ...
    async def get(self, memory_id: str) -> Optional[Dict[str, Any]]: ...
    async def get_all(
        self,
        *,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        filters: Optional[_Filters] = None,
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
        expiration_date: Optional[_Date] = ...,
    ) -> Dict[str, Any]: ...
    async def delete(self, memory_id: str) -> Dict[str, Any]: ...
    async def delete_all(
        self,
        user_id: Optional[_Id] = None,
        agent_id: Optional[_Id] = None,
        run_id: Optional[_Id] = None,
        *,
        filters: Optional[_Filters] = None,
    ) -> Dict[str, Any]: ...
    async def history(self, memory_id: str) -> List[Dict[str, Any]]: ...
    async def reset(self) -> None: ...
    async def import_mem0_points(
        self, points: List[Dict[str, Any]], history: List[Dict[str, Any]], mem0_config: Optional[Dict[str, Any]] = None
    ) -> Dict[str, Any]: ...
    async def import_mem0_postgres(self, mem0_config: Dict[str, Any]) -> Dict[str, Any]: ...
    def close(self) -> None: ...

_Event = Dict[str, Any]

@final
class ChatStream:
    """A streamed turn: {"type": "memories"}, {"type": "delta"}…, {"type": "done"}."""

    def __iter__(self) -> "ChatStream": ...
    def __next__(self) -> _Event: ...
    def __aiter__(self) -> "ChatStream": ...
    async def __anext__(self) -> _Event: ...

@final
class Chat:
    """Memory-augmented chat: turns, conversations, summaries."""

    def __init__(self) -> None: ...
    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "Chat": ...
    def turn(self, message: str, *, user_id: str, session_id: Optional[str] = None) -> Dict[str, Any]: ...
    async def aturn(self, message: str, *, user_id: str, session_id: Optional[str] = None) -> Dict[str, Any]: ...
    def stream(self, message: str, *, user_id: str, session_id: Optional[str] = None) -> ChatStream: ...
    def summary(self, user_id: str) -> Dict[str, Any]: ...
    def conversations(self, user_id: str, limit: int = 50, offset: int = 0) -> List[Dict[str, Any]]: ...
    def messages(self, user_id: str, session_id: str, limit: int = 100) -> List[Dict[str, Any]]: ...
    def delete_conversation(self, user_id: str, session_id: str) -> bool: ...

@final
class Auth:
    """Accounts (built-in or Supabase Auth), tokens and service API keys."""

    def __init__(self) -> None: ...
    def sign_up(self, email: str, password: str, full_name: Optional[str] = None) -> Dict[str, Any]: ...
    def sign_in(self, email: str, password: str) -> Dict[str, Any]: ...
    def refresh(self, refresh_token: str) -> Dict[str, Any]: ...
    def verify(self, access_token: str) -> Dict[str, Any]: ...
    def sign_out(self, access_token: str) -> None: ...
    def get_user(self, access_token: str) -> Dict[str, Any]: ...
    def update_user(self, access_token: str, *, full_name: Optional[str] = None, email: Optional[str] = None, current_password: Optional[str] = None) -> Dict[str, Any]: ...
    def change_password(self, access_token: str, current_password: str, new_password: str) -> None: ...
    def request_password_reset(self, email: str) -> None: ...
    def confirm_password_reset(self, token: str, new_password: str) -> None: ...
    def delete_user(self, user_id: str) -> bool: ...
    def create_api_key(self, name: str, scopes: List[str], namespace: str = ...) -> Dict[str, Any]: ...
    def list_api_keys(self) -> List[Dict[str, Any]]: ...
    def revoke_api_key(self, key_id: str) -> None: ...
