"""tus: the same Node client (tus-js-client, 8 MiB chunks) into pyfiledrop's `/files/` and into
the tus project's own Node server (`@tus/server` with `@tus/file-store`), both pinned npm dev
dependencies (package.json). Neither server flushes unless pyfiledrop is left at its default.
"""

import json
from pathlib import Path

from bench.systems import (
    PYFILEDROP,
    PYFILEDROP_NO_FSYNC,
    REPO,
    Matrix,
    Server,
    Setting,
    Trial,
)
from bench.units import MIB, format_size

HERE = Path(__file__).resolve().parent
NODE_MODULES = REPO / "node_modules"
TUS_UPLOAD = HERE / "tus_upload.mjs"
TUS_SERVER = HERE / "tus_server.mjs"
TUS_CHUNK_SIZE = 8 * MIB
TUS_CLIENT = f"tus-js-client {format_size(TUS_CHUNK_SIZE)}"
TUS_PEER = "@tus/server"
TUS_INTO_PYFILEDROP = "pyfiledrop tus"


def _package(name: str) -> str:
    return str(NODE_MODULES / name / "package.json")


def _tus_server_command(trial: Trial) -> list[str]:
    return ["node", str(TUS_SERVER), str(trial.port), str(trial.storage)]


# Any answer means it listens: `/files/` itself answers 404 to a GET.
TUS_NODE = Server(
    TUS_PEER,
    _tus_server_command,
    "/files/",
    needs=(_package("@tus/server"), _package("@tus/file-store")),
)


def tus_js_client(trial: Trial) -> list[str]:
    return [
        *("node", str(TUS_UPLOAD), f"{trial.url}/files/"),
        *(str(trial.source), str(TUS_CHUNK_SIZE)),
    ]


def stored_by_upload_id(trial: Trial) -> Path | None:
    """@tus/file-store keeps an upload as <directory>/<upload id>: the id is the last part of the
    upload URL the client printed (bench/tus_upload.mjs)."""
    try:
        url = json.loads((trial.workdir / "client.out").read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    stored = trial.storage / str(url).rstrip("/").rsplit("/", 1)[-1]
    return stored if stored.is_file() else None


def peer_settings() -> list[Setting]:
    return [
        Setting(
            TUS_PEER,
            TUS_CLIENT,
            False,
            TUS_NODE,
            tus_js_client,
            output=stored_by_upload_id,
            needs=(_package("tus-js-client"),),
        )
    ]


def pyfiledrop_settings(matrix: Matrix) -> list[Setting]:
    """No flush (the target's row: @tus/file-store does not flush either), and with the server's
    default flush as a reference in the full matrix. The stored file keeps the name the client
    sends in its metadata, the source's."""
    modes = [(PYFILEDROP_NO_FSYNC, False)] + ([(PYFILEDROP, True)] if matrix.references else [])
    return [
        Setting(
            f"{TUS_INTO_PYFILEDROP} ({'flush' if flush else 'no flush'})",
            TUS_CLIENT,
            flush,
            server,
            tus_js_client,
            needs=(_package("tus-js-client"),),
        )
        for server, flush in modes
    ]
