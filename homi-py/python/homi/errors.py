"""Homi's exceptions: one class per kind of error, all under HomiError.

Each also derives from the built-in exception a Python user would catch for
it: a ValidationError is a ValueError, a NotFoundError a LookupError (and,
as in mem0, a ValueError), a ProviderTimeoutError a TimeoutError.
RateLimitedError carries retry_after (seconds) when the wait is known.

mem0's names work too, so `except MemoryNotFoundError` in code written for
mem0 keeps catching what it caught: MemoryNotFoundError, RateLimitError,
ConfigurationError, AuthenticationError, LLMError, EmbeddingError,
NetworkError, VectorStoreError, DatabaseError (and `MemoryError`, mem0's
base class, importable from this module). Like mem0's, every exception has
`message`, `error_code`, `details`, `suggestion` and `debug_info`.
"""


from typing import Any, Dict, Optional


class HomiError(Exception):
    """Any error Homi raises."""

    error_code: str = "HOMI_001"
    suggestion: Optional[str] = None

    def __init__(
        self,
        message: str = "",
        error_code: Optional[str] = None,
        details: Optional[Dict[str, Any]] = None,
        suggestion: Optional[str] = None,
        debug_info: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code
        self.details = details if details is not None else {}
        if suggestion is not None:
            self.suggestion = suggestion
        self.debug_info = debug_info if debug_info is not None else {}


class ValidationError(HomiError, ValueError):
    """An argument is invalid; the message names it."""

    error_code = "VAL_001"


class ConfigError(HomiError, ValueError):
    """A configuration value is missing or invalid; the message names it."""

    error_code = "CFG_001"


class NotFoundError(HomiError, LookupError, ValueError):
    """The memory (or other thing) does not exist in the caller's scope.

    Also a ValueError, which is what mem0 raises for an unknown memory id.
    """

    error_code = "MEM_404"


class ConflictError(HomiError):
    """The request conflicts with the store's state (e.g. another embedder)."""

    error_code = "CONFLICT_001"


class AuthError(HomiError, PermissionError):
    """Credentials or a token are missing, invalid, expired or revoked."""

    error_code = "AUTH_001"


class ForbiddenError(AuthError):
    """Known caller, not allowed to do this."""

    error_code = "AUTH_003"


class RateLimitedError(HomiError):
    """Too many requests; wait `retry_after` seconds when it is set."""

    error_code = "RATE_001"
    retry_after: Optional[float] = None


class ProviderError(HomiError):
    """The model provider failed or answered something unusable."""

    error_code = "LLM_001"
    suggestion = "Please check your LLM configuration and API key"


class ProviderNotConfiguredError(ProviderError):
    """No model provider is configured: set OPENAI_API_KEY or OPENAI_BASE_URL."""

    error_code = "CFG_002"


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The model provider did not answer in time."""

    error_code = "NET_002"


class UnavailableError(HomiError, ConnectionError):
    """A service Homi depends on (Supabase Auth, SMTP) failed."""

    error_code = "NET_001"


class StorageError(HomiError):
    """The store failed."""

    error_code = "DB_001"
    suggestion = "Please check your database configuration and connection"


# mem0's names for the same errors.
MemoryError = HomiError  # noqa: A001 (mem0's base class shadows the built-in too; not in __all__)
MemoryNotFoundError = NotFoundError
RateLimitError = RateLimitedError
ConfigurationError = ConfigError
AuthenticationError = AuthError
LLMError = ProviderError
EmbeddingError = ProviderError
NetworkError = UnavailableError
VectorStoreError = StorageError
DatabaseError = StorageError

__all__ = [
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
