"""`pyfiledrop delete URL [--token T]`: delete an uploaded file with the token its upload returned.

The URL is the file's download link (or its `/api/files/<id>` address). The token comes from
`--token`, `$PYFILEDROP_DELETE_TOKEN` or a `?token=` on the URL; a server that needs a password
gets `--password` or `$PYFILEDROP_PASSWORD`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx

from pyfiledrop.client.transport import (
    PASSWORD_ENVIRONMENT,
    describe_transport_error,
    json_body,
    make_client,
)

TOKEN_ENVIRONMENT = "PYFILEDROP_DELETE_TOKEN"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_LINK_FOLDERS = ("download", "api/files")


def api_address(url: str) -> tuple[str, str | None]:
    """The file's `DELETE` address and any `?token=` from a download link or an API address."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/")
    for folder in _LINK_FOLDERS:
        prefix, marker, file_id = path.rpartition(f"/{folder}/")
        if marker and file_id and "/" not in file_id:
            token = parse_qs(parts.query).get("token", [None])[0]
            address = urlunsplit(
                (parts.scheme, parts.netloc, f"{prefix}/api/files/{file_id}", "", "")
            )
            return address, token
    raise ValueError(f"not a pyfiledrop file link (…/download/<id>): {url!r}")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    delete = subparsers.add_parser(
        "delete",
        help="delete an uploaded file, with the delete token its upload returned",
        description="Delete a file you uploaded: give its link and the delete token the upload "
        "printed (uploads from the page can be deleted there).",
    )
    delete.add_argument("url", metavar="URL", help="the file's download link")
    delete.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENVIRONMENT),
        help=f"the file's delete token (default: ${TOKEN_ENVIRONMENT})",
    )
    delete.add_argument(
        "--password",
        default=os.environ.get(PASSWORD_ENVIRONMENT),
        help=f"the server's password or token, if it has one (default: ${PASSWORD_ENVIRONMENT})",
    )
    delete.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    delete.set_defaults(func=run_delete)


def run_delete(args: argparse.Namespace) -> int:
    try:
        address, url_token = api_address(args.url)
    except ValueError as error:
        print(f"pyfiledrop delete: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or url_token
    headers = {"X-Delete-Token": token} if token else {}
    with make_client(1, password=args.password) as http:
        try:
            response = http.delete(address, headers=headers)
        except httpx.TransportError as error:
            print(f"pyfiledrop delete: {describe_transport_error(error, address)}", file=sys.stderr)
            return EXIT_FAILED
    body = json_body(response) or {}
    if args.json:
        print(json.dumps({"status_code": response.status_code, **body}))
    if response.status_code == 200:
        if not args.json:
            print(f"deleted {body.get('id', address)}")
        return EXIT_OK
    if response.status_code == 410:
        if not args.json:
            print(f"already gone: {body.get('error', 'gone')}")
        return EXIT_OK
    if not args.json:
        reason = body.get("error") or response.reason_phrase
        hint = ""
        if response.status_code == 404 and not token:
            hint = f" (give the delete token with --token or ${TOKEN_ENVIRONMENT})"
        elif response.status_code == 401:
            hint = f" (give the server's password with --password or ${PASSWORD_ENVIRONMENT})"
        print(f"pyfiledrop delete: {response.status_code} {reason}{hint}", file=sys.stderr)
    return EXIT_FAILED
