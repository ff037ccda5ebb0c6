"""The core's refusals, named by what went wrong; each keeps the short `code` clients read.

No HTTP here: `web/errors.py` holds the one table of statuses and renders every refusal. A message
may name one field of the request as `{field}`; the protocol the request came by words it
(`Upload-Offset` in tus), so wire names stay in protocol modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PyfiledropError(Exception):
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with its field named as `names` say (else by the core's own name)."""
        if self.field is None:
            return self.message
        return self.message.replace("{field}", names.get(self.field, self.field))

    def body(self, names: Mapping[str, str]) -> dict[str, Any]:
        return {"error": self.worded(names), "code": self.code, **self.extra}


class Invalid(PyfiledropError):
    """The request itself is malformed or its values disagree."""

    code = "bad_request"


class NotPermitted(PyfiledropError):
    """Known, but not for this caller or not on this server (a password, downloads off)."""

    code = "forbidden"


class Missing(PyfiledropError):
    code = "not_found"


class UploadNotFound(Missing):
    pass


class FileNotFound(Missing):
    pass


class LinkNotFound(Missing):
    pass


class ProtocolUnavailable(Missing):
    """The storage can't take this protocol's uploads at all (tus on S3)."""


class TooSlow(PyfiledropError):
    code = "too_slow"


class Conflicting(PyfiledropError):
    """The request disagrees with the upload's state as others left it."""

    code = "conflict"


class ChunksMissing(Conflicting):
    pass


class UploadDiscarded(Conflicting):
    pass


class OffsetMismatch(Conflicting):
    """Bytes sent for a position the upload is not at (its `offset` goes with the answer)."""


class NotSupportedByStorage(Conflicting):
    pass


class FileGone(PyfiledropError):
    """Existed, but expired, used up, deleted or lost (`reason` says which when known)."""

    code = "gone"


class UploadExpired(FileGone):
    pass


class UnsupportedVersion(PyfiledropError):
    code = "precondition_failed"


class TooLarge(PyfiledropError):
    code = "too_large"


class WrongContentType(PyfiledropError):
    code = "unsupported_media_type"


class BadRange(PyfiledropError):
    code = "range_not_satisfiable"


class UploadBusy(PyfiledropError):
    """Another request holds the upload (writing it or finishing it)."""

    code = "locked"


class Interrupted(UploadBusy):
    """The request stopped because another request for its upload asked for the lock."""

    code = "interrupted"


class TooManyUploads(PyfiledropError):
    code = "too_many_uploads"


class ChecksumMismatch(PyfiledropError):
    """The body does not match the checksum its client sent with it."""

    code = "checksum_mismatch"


class NoSpace(PyfiledropError):
    code = "insufficient_storage"


class OverQuota(NoSpace):
    code = "over_quota"


class Unavailable(PyfiledropError):
    """Try the same request again shortly (the database is busy, a file still finishing)."""

    code = "unavailable"


class ChunkBusy(Unavailable):
    """Another request is writing this chunk right now; its body was read and dropped."""

    code = "chunk_busy"
