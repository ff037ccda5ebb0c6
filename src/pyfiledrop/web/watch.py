"""Watching every request from the outside: the access log, request metrics, uploads in flight.

The outermost middleware, so it also sees what the password check refuses. It reads the body as
it passes (counting bytes, never holding them) and the status and size of the answer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pyfiledrop.logs import ACCESS_LOGGER, loggable_path
from pyfiledrop.metrics import Metrics
from pyfiledrop.receiving import uploads_in_progress
from pyfiledrop.web.body_takeover import COUNT_IN

access_log = logging.getLogger(ACCESS_LOGGER)

CLIENT_GONE = 499
# When the answer names no error code, the status does.
STATUS_CODES = {401: "unauthorized", 429: "too_many_attempts"}

Activity = Callable[[int], None]  # +1 when an upload request starts, -1 when it ends


def client_address(scope: Scope) -> str:
    """Who sent the request: the one place to learn it (trusted proxies plug in here)."""
    client = scope.get("client")
    if not client:
        return "unknown"
    address = str(client[0])
    # A dual-stack socket (`--host ::`) sees IPv4 clients as ::ffff:a.b.c.d: one client, one name.
    return address.removeprefix("::ffff:") if "." in address else address


def upload_protocol(method: str, path: str) -> str | None:
    """The protocol of a request that carries upload bytes, or None for any other request."""
    if method == "POST" and path == "/upload":
        return "dropzone"
    if method in ("PUT", "POST") and path.startswith("/put/"):
        return "put"
    if (method == "PATCH" and path.startswith("/files/")) or (
        method == "POST" and path in ("/files", "/files/")
    ):
        return "tus"
    return None


def outcome(status: int) -> str:
    if status == CLIENT_GONE:
        return "aborted"
    if status >= 500:
        return "error"
    return "refused" if status >= 400 else "ok"


def note_error_code(scope: Scope, code: str) -> None:
    """Called by whoever refuses a request, so the log and the metrics name the reason."""
    scope.setdefault("state", {})["error_code"] = code


def note_upload(scope: Scope, upload_id: str) -> None:
    """Called by a protocol once it knows (and has validated) the upload a request is for."""
    scope.setdefault("state", {})["upload_id"] = upload_id


def noted_upload(scope: Scope) -> str | None:
    upload_id = scope.get("state", {}).get("upload_id")
    return upload_id if isinstance(upload_id, str) else None


class WatchMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        log_requests: bool,
        activity: Activity | None = None,
    ) -> None:
        self.app = app
        self.log_requests = log_requests
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        protocol = upload_protocol(method, scope["path"])
        seen: dict[str, int] = {"status": 0, "in": 0, "out": 0}
        metrics = _metrics(scope)
        # Counted as the bytes come, so a long upload shows on the graph while it runs.
        received = (
            metrics.received_bytes.labels(protocol)
            if metrics is not None and protocol is not None
            else None
        )

        def count_in(size: int) -> None:
            seen["in"] += size
            if received is not None:
                received.inc(size)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                count_in(len(message.get("body", b"")))
            return message

        # A body read straight from the socket (web/body_takeover.py) is counted there.
        scope.setdefault("extensions", {})[COUNT_IN] = count_in

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = int(message["status"])
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        if protocol is not None and self.activity is not None:
            self.activity(1)
        try:
            await self.app(scope, counting_receive, watching_send)
        except BaseException:
            seen["status"] = seen["status"] or 500
            raise
        finally:
            if protocol is not None and self.activity is not None:
                self.activity(-1)
            self._record(scope, protocol, seen, time.perf_counter() - started)

    def _record(
        self, scope: Scope, protocol: str | None, seen: dict[str, int], seconds: float
    ) -> None:
        status = seen["status"] or CLIENT_GONE
        state: dict[str, Any] = scope.get("state", {})
        code = state.get("error_code") or STATUS_CODES.get(status)
        metrics = _metrics(scope)
        if metrics is not None:
            if protocol is not None:
                metrics.chunk_requests.labels(protocol, outcome(status)).inc()
            if 400 <= status < 500 and status != CLIENT_GONE:
                metrics.refusals.labels(str(status), code or "http").inc()
            if scope["path"].startswith("/download/") and status in (200, 206):
                if scope["method"] == "GET":
                    metrics.downloads.inc()
                metrics.sent_bytes.inc(seen["out"])
        if not self.log_requests:
            return
        fields = {
            "client": client_address(scope),
            "method": scope["method"],
            "path": loggable_path(scope["path"]),
            "status": status,
            "bytes_in": seen["in"],
            "bytes_out": seen["out"],
            "seconds": round(seconds, 4),
        }
        upload_id = noted_upload(scope)
        if upload_id:
            fields["upload"] = upload_id
        if code:
            fields["code"] = code
        access_log.info(
            "%s %s %s %d in=%d out=%d %.3fs%s%s",
            fields["client"], fields["method"], fields["path"], status, seen["in"], seen["out"],
            seconds, f" upload={upload_id}" if upload_id else "", f" {code}" if code else "",
            extra={"fields": fields},
        )  # fmt: skip


def _metrics(scope: Scope) -> Metrics | None:
    app = scope.get("app")
    uploads = getattr(getattr(app, "state", None), "uploads", None)
    metrics = getattr(uploads, "metrics", None)
    return metrics if isinstance(metrics, Metrics) else None


# --- /metrics --------------------------------------------------------------------------------


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus' text format; the gauges are read from the books and the disk right now."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    uploads = request.app.state.uploads
    metrics: Metrics = uploads.metrics
    in_progress = await uploads_in_progress(uploads.db)
    metrics.uploads_in_progress.set(len(in_progress))
    folder = uploads.settings.storage
    if isinstance(folder, Path):
        stats = os.statvfs(folder)
        metrics.free_bytes.set(stats.f_bavail * stats.f_frsize)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
