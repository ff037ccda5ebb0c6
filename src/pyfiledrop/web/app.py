"""The Starlette application: routes, error rendering, and the core's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pyfiledrop import files, health, keepawake, limits, malloc, runtime, tus_uploads
from pyfiledrop.config import Settings
from pyfiledrop.errors import PyfiledropError, Unavailable
from pyfiledrop.protocols import dropzone, put, tus
from pyfiledrop.uploads import NO_OWNER, Uploads
from pyfiledrop.web import downloads, passwords, records, shares
from pyfiledrop.web import errors as web_errors
from pyfiledrop.web.auth import AuthMiddleware, auth_enabled, auth_routes
from pyfiledrop.web.hosts import AllowedHosts
from pyfiledrop.web.owner import OwnerMiddleware
from pyfiledrop.web.page import page_routes, security_headers
from pyfiledrop.web.proxy import ProxyHeadersMiddleware, parse_networks
from pyfiledrop.web.watch import (
    WatchMiddleware,
    client_address,
    metrics_endpoint,
)

log = logging.getLogger("pyfiledrop")


class AnyTextConvertor(Convertor[str]):
    """Like `path`, but also matches CR/LF, so such names reach the sanitizer instead of a 404."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyTextConvertor())


def _uploads(request: Request) -> Uploads:
    uploads: Uploads = request.app.state.uploads
    return uploads


def _owner(request: Request) -> str:
    owner: str = request.scope["state"]["owner"]
    return owner


def _claimant(request: Request) -> str:
    """The owner a chunked upload gets: the cookie's, only if the request sent one."""
    return _owner(request) if request.scope["state"].get("owner_sent") else NO_OWNER


async def upload_chunk(request: Request) -> Response:
    return JSONResponse(
        await dropzone.receive(request, _uploads(request), _owner(request), _claimant(request))
    )


async def finish_upload(request: Request) -> Response:
    upload_id = dropzone.parse_upload_id(request.path_params["upload_id"])
    uploads = _uploads(request)
    stored = await uploads.finalize(upload_id, _claimant(request))
    return JSONResponse({"status": "done", "file": await records.uploader_record(uploads, stored)})


async def upload_state(request: Request) -> Response:
    upload_id = dropzone.parse_upload_id(request.path_params["upload_id"])
    uploads = _uploads(request)
    return JSONResponse(await records.upload_state(uploads, await uploads.state_of(upload_id)))


async def put_file(request: Request) -> Response:
    name = request.path_params["name"]
    uploads = _uploads(request)
    # Checked before the body is read; set before the answer names the link.
    password = request.headers.get(passwords.PASSWORD_HEADER)
    if password is not None:
        passwords.valid_password(password)
    record = await put.receive(request, uploads, _owner(request), name)
    if password is not None:
        await shares.protect(uploads, record["id"], password)
    # curl users paste these links: absolute, transfer.sh style (the other answers stay relative).
    record["url"] = shares.download_link(request, uploads.settings, record["id"])
    record["page_url"] = shares.page_link(request, uploads.settings, record["id"])
    if put.wants_text(request):
        return PlainTextResponse(record["url"] + "\n", status_code=201)
    return JSONResponse(record, status_code=201)


async def list_files(request: Request) -> Response:
    served = await files.served_files_of(_uploads(request), _owner(request))
    return JSONResponse({"files": [records.file_record(stored) for stored in served]})


async def file_info(request: Request) -> Response:
    file_id = request.path_params["file_id"]
    stored = await files.served_file(_uploads(request), file_id, owner=_owner(request))
    return JSONResponse(records.file_record(stored))


async def delete_file(request: Request) -> Response:
    token = request.headers.get("x-delete-token") or request.query_params.get("token")
    file_id = request.path_params["file_id"]
    await files.delete_own_file(_uploads(request), file_id, _owner(request), token)
    return JSONResponse({"status": "deleted", "id": file_id})


async def download_file(request: Request) -> Response:
    return await downloads.download(request, _uploads(request), request.path_params["file_id"])


async def healthz(request: Request) -> Response:
    """ "ok" only when the database takes a read and a write and the storage folders are
    writable; the counters only where no password protects the server (they tell its traffic)."""
    uploads = _uploads(request)
    problems = await health.failing_parts(uploads)
    if problems:
        return JSONResponse(
            {"status": "unavailable", "failing": problems},
            status_code=503,
            headers={"Retry-After": str(web_errors.retry_after(Unavailable))},
        )
    counters = {} if auth_enabled(uploads.settings) else uploads.counters
    return JSONResponse({"status": "ok", **counters})


def api_routes() -> list[BaseRoute]:
    return [
        Route("/upload", upload_chunk, methods=["POST"]),
        Route("/upload/{upload_id}/finish", finish_upload, methods=["POST"]),
        Route("/upload/{upload_id}", upload_state, methods=["GET"]),
        Route("/put/{name:anytext}", put_file, methods=["PUT", "POST"]),
        Route("/api/files", list_files, methods=["GET"]),
        Route("/api/files/{file_id}", file_info, methods=["GET"]),
        Route("/api/files/{file_id}", delete_file, methods=["DELETE"]),
        Route("/download/{file_id}", download_file, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        *tus.routes(),
    ]


async def _domain_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, PyfiledropError)
    return web_errors.render(request, error)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return JSONResponse(
        {"error": error.detail}, status_code=error.status_code, headers=error.headers
    )


async def _client_gone(request: Request, error: Exception) -> Response:
    return Response(status_code=499)


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    # uvicorn closes the connection after an exception; saying so lets a client that pipelined
    # or reuses the connection send its next request on a new one instead of waiting.
    return JSONResponse(
        {"error": "internal server error"}, status_code=500, headers={"Connection": "close"}
    )


class ClientAddress:
    """Makes the client's address known to the core for this request (limits.py's caps)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        known = scope["type"] == "http" and scope.get("client")
        token = limits.client_address.set(client_address(scope) if known else None)
        try:
            await self.app(scope, receive, send)
        finally:
            limits.client_address.reset(token)


def create_app(settings: Settings, uploads: Uploads | None = None) -> Starlette:
    """The app; `uploads` may be given by tests that want a special clock or storage."""

    awake = keepawake.KeepAwake(keepawake.DEFAULT_METHOD) if settings.keep_awake else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        core = uploads or runtime.open_core(settings)
        app.state.uploads = core
        if settings.workers == 1 and settings.database is None:
            await core.release_dead_finishers()
            await tus_uploads.release_dead_locks(core)
        tasks = [
            asyncio.create_task(core.run_janitor()),
            asyncio.create_task(malloc.give_back_periodically()),
        ]
        if awake is not None:
            tasks.append(asyncio.create_task(awake.run()))
        try:
            yield {}
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if awake is not None:
                awake.close()
            if uploads is None:
                runtime.close_core(core)

    metrics = [Route("/metrics", metrics_endpoint, methods=["GET"])] if settings.metrics else []
    app = Starlette(
        routes=[
            *api_routes(),
            *metrics,
            *shares.routes(),
            *auth_routes(),
            *page_routes(settings),
        ],
        lifespan=lifespan,
        exception_handlers={
            PyfiledropError: _domain_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
            Exception: _unexpected,
        },
    )
    app.add_middleware(ClientAddress)
    if settings.allowed_hosts:
        app.add_middleware(AllowedHosts, allowed=settings.allowed_hosts)
    if auth_enabled(settings):
        app.add_middleware(AuthMiddleware, settings=settings)  # inside: its answers get headers
    app.add_middleware(
        OwnerMiddleware,
        cors_origins=settings.cors_origins,
        security_headers=lambda: security_headers(settings),
        expose_headers=tus.EXPOSED_HEADERS,
        listed_only_headers=(tus.DELETE_TOKEN_HEADER,),
    )
    app.state.keep_awake = awake
    # Sees every answer, the password check's too.
    app.add_middleware(
        WatchMiddleware,
        log_requests=settings.access_log,
        activity=awake.activity if awake is not None else None,
    )
    # Outermost: everything inside sees the real client, scheme and host.
    app.add_middleware(ProxyHeadersMiddleware, trusted=parse_networks(settings.trusted_proxies))
    return app
