"""Homi's exceptions: one class per kind of error, all under HomiError.

Each also derives from the built-in exception a Python user would catch for
it: a ValidationError is a ValueError, a NotFoundError a LookupError (and,
as in mem0, a ValueError), a
ProviderTimeoutError a TimeoutError. RateLimitedError carries retry_after
(seconds) when the wait is known.
"""


class HomiError(Exception):
    """Any error Homi raises."""


class ValidationError(HomiError, ValueError):
    """An argument is invalid; the message names it."""


class ConfigError(HomiError, ValueError):
    """A configuration value is missing or invalid; the message names it."""


class NotFoundError(HomiError, LookupError, ValueError):
    """The memory (or other thing) does not exist in the caller's scope.

    Also a ValueError, which is what mem0 raises for an unknown memory id.
    """


class ConflictError(HomiError):
    """The request conflicts with the store's state (e.g. another embedder)."""


class AuthError(HomiError, PermissionError):
    """Credentials or a token are missing, invalid, expired or revoked."""


class ForbiddenError(AuthError):
    """Known caller, not allowed to do this."""


class RateLimitedError(HomiError):
    """Too many requests; wait `retry_after` seconds when it is set."""

    retry_after = None


class ProviderError(HomiError):
    """The model provider failed or answered something unusable."""


class ProviderNotConfiguredError(ProviderError):
    """No model provider is configured: set OPENAI_API_KEY or OPENAI_BASE_URL."""


class ProviderTimeoutError(ProviderError, TimeoutError):
    """The model provider did not answer in time."""


class UnavailableError(HomiError, ConnectionError):
    """A service Homi depends on (Supabase Auth, SMTP) failed."""


class StorageError(HomiError):
    """The store failed."""


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
]
