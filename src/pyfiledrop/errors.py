"""One table of domain errors: each has a short code, an HTTP status and a message.

Protocol handlers raise these; the web layer renders them as JSON `{"error": message}` in one place.
"""

from __future__ import annotations

from typing import Any


class PyfiledropError(Exception):
    status = 400
    code = "bad_request"
    retry_after: int | None = None  # seconds, sent as Retry-After: the same request may succeed

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **self.extra}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class BadRequest(PyfiledropError):
    status = 400
    code = "bad_request"


class Forbidden(PyfiledropError):
    status = 403
    code = "forbidden"


class NotFound(PyfiledropError):
    status = 404
    code = "not_found"


class RequestTimeout(PyfiledropError):
    status = 408
    code = "too_slow"


class Conflict(PyfiledropError):
    status = 409
    code = "conflict"


class Gone(PyfiledropError):
    status = 410
    code = "gone"


class PreconditionFailed(PyfiledropError):
    status = 412
    code = "precondition_failed"


class PayloadTooLarge(PyfiledropError):
    status = 413
    code = "too_large"


class UnsupportedMediaType(PyfiledropError):
    status = 415
    code = "unsupported_media_type"


class RangeNotSatisfiable(PyfiledropError):
    status = 416
    code = "range_not_satisfiable"


class Locked(PyfiledropError):
    status = 423
    code = "locked"


class TooManyRequests(PyfiledropError):
    status = 429
    code = "too_many_uploads"
    retry_after = 60


class ChecksumMismatch(PyfiledropError):
    """tus's own status: the body does not match its `Upload-Checksum`."""

    status = 460
    code = "checksum_mismatch"


class InsufficientStorage(PyfiledropError):
    status = 507
    code = "insufficient_storage"


class ServiceUnavailable(PyfiledropError):
    status = 503
    code = "unavailable"
    retry_after = 5


class ChunkBusy(ServiceUnavailable):
    """Another request is writing this chunk right now; its body was read and dropped."""

    code = "chunk_busy"
    retry_after = 1
