"""Domain errors: a stable machine code and a category, never an HTTP status.

Each API surface renders the category in its own error shape (the native one in ``web/errors.py``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

ErrorKind = Literal[
    "invalid",
    "unauthenticated",
    "forbidden",
    "not_found",
    "conflict",
    "too_large",
    "uri_too_long",
    "unsupported_media",
    "throttled",
    "unavailable",
    "timeout",
    "internal",
]


class AppError(Exception):
    kind: ClassVar[ErrorKind] = "internal"
    code: ClassVar[str] = "INTERNAL_ERROR"
    message: ClassVar[str] = "Internal error."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
        target: tuple[str, str] | None = None,
        org_id: str | None = None,
    ) -> None:
        self.message_text = message or type(self).message
        self.error_code = code or type(self).code
        self.details = details or []
        self.retry_after = retry_after
        # What was refused or not found, for the audit log only (never rendered).
        self.target = target
        self.org_id = org_id
        super().__init__(self.message_text)


class Invalid(AppError):
    kind = "invalid"
    code = "VALIDATION_FAILED"
    message = "The request is not valid."


class InvalidJson(Invalid):
    code = "INVALID_JSON"
    message = "The body is not valid JSON."


class ReadOnlyField(Invalid):
    code = "READ_ONLY_FIELD"
    message = "The body sets a field that only the server sets."


class Unauthenticated(AppError):
    kind = "unauthenticated"
    code = "AUTHENTICATION_REQUIRED"
    message = "Authentication is required."


class InvalidCredentials(Unauthenticated):
    code = "INVALID_CREDENTIALS"
    message = "The credentials are not valid."


class Forbidden(AppError):
    kind = "forbidden"
    code = "FORBIDDEN"
    message = "You are not allowed to do this."


class NotFound(AppError):
    kind = "not_found"
    code = "NOT_FOUND"
    message = "Not found."


class Conflict(AppError):
    kind = "conflict"
    code = "CONFLICT"
    message = "The request conflicts with existing data."


class TooLarge(AppError):
    kind = "too_large"
    code = "PAYLOAD_TOO_LARGE"
    message = "The request is too large."


class UnsupportedMedia(AppError):
    kind = "unsupported_media"
    code = "UNSUPPORTED_MEDIA_TYPE"
    message = "The content type is not supported here."


class Throttled(AppError):
    kind = "throttled"
    code = "RATE_LIMITED"
    message = "Too many requests."


class Unavailable(AppError):
    kind = "unavailable"
    code = "STORAGE_UNAVAILABLE"
    message = "Storage is unavailable; retry later."


class Overloaded(Unavailable):
    code = "OVERLOADED"
    message = "The server is overloaded; retry later."
