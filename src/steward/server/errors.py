"""The domain's exception tree. Mapped to HTTP once, in `app.py`, as
`{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations


class StewardError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        if code:
            self.code = code


class InvalidInput(StewardError):
    """The request is not valid."""

    status_code = 422
    code = "invalid_input"


class Unauthorized(StewardError):
    """Authentication is required or failed."""

    status_code = 401
    code = "unauthorized"


class PermissionDenied(StewardError):
    """You are not allowed to do this."""

    status_code = 403
    code = "forbidden"


class NotFound(StewardError):
    """Not found."""

    status_code = 404
    code = "not_found"


class Conflict(StewardError):
    """The request conflicts with the current state."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(StewardError):
    """The request body is too large."""

    status_code = 413
    code = "payload_too_large"


class RateLimited(StewardError):
    """Too many attempts; try again later."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str = "", *, retry_after_s: int = 60, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s


class Unavailable(StewardError):
    """The service is temporarily unavailable."""

    status_code = 503
    code = "unavailable"


class ServerBusy(Unavailable):
    """The server is busy; try again after `retry_after_s`."""

    code = "server_busy"

    def __init__(self, message: str = "", *, retry_after_s: int = 10, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = retry_after_s
