"""The `upload` and `download` subcommands, added to the `pyfiledrop` command by `register`.

Exit codes: 0 every file went through, 1 some file failed, 2 bad usage, 3 the server refused the
password (401/403, or locked out after wrong ones: nothing more is tried), 130 interrupted.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from pyfiledrop.client import wire
from pyfiledrop.client.download import download_file, download_summary
from pyfiledrop.client.progress import Reporter, make_reporter
from pyfiledrop.client.sizes import format_size
from pyfiledrop.client.transport import (
    PASSWORD_ENVIRONMENT,
    AuthError,
    TransferError,
    make_client,
)
from pyfiledrop.client.upload import (
    AUTO_CHUNK_FLOOR,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PARALLEL,
    DEFAULT_RETRIES,
    Session,
    UploadOptions,
    upload_file,
    upload_summary,
)
from pyfiledrop.units import AUTO_CHUNK_MAX, SIZE_RULE, parse_duration, parse_size

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
MAX_PARALLEL = 64
URL_ENVIRONMENT = "PYFILEDROP_URL"


def _chunk_size(text: str) -> int | None:
    return None if text.strip().lower() == "auto" else _size(text)


def _size(text: str) -> int:
    try:
        value = parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 bytes")
    return value


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def _server_url(text: str) -> str:
    url = text.strip().rstrip("/")
    if not url.startswith(("http://", "https://")) or len(url.split("/")) < 3:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return url


def _duration(text: str) -> str:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second")
    return str(seconds)


def _add_password(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password",
        default=os.environ.get(PASSWORD_ENVIRONMENT),
        help=f"the server's password or token, if it has one (default: ${PASSWORD_ENVIRONMENT})",
    )


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    upload = subparsers.add_parser(
        "upload",
        help="upload files in parallel chunks, resumable, verified by SHA-256",
        description="Upload files with Dropzone's chunked protocol. Run the same command again "
        "after an interruption and it sends only the missing chunks.",
    )
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE")
    upload.add_argument(
        "--url",
        type=_server_url,
        default=os.environ.get(URL_ENVIRONMENT),
        help=f"server base URL, e.g. http://127.0.0.1:16273 (default: ${URL_ENVIRONMENT})",
    )
    upload.add_argument(
        "--parallel",
        type=_count(1, MAX_PARALLEL),
        default=DEFAULT_PARALLEL,
        metavar="N",
        help=f"chunks in flight (default {DEFAULT_PARALLEL})",
    )
    upload.add_argument(
        "--chunk-size",
        type=_chunk_size,
        default=DEFAULT_CHUNK_SIZE,
        metavar="SIZE",
        help=(
            "auto (the default: per file, a power of two from "
            f"{format_size(AUTO_CHUNK_FLOOR)} to {format_size(AUTO_CHUNK_MAX)}), "
            f"or a fixed size: bytes, or e.g. 8MiB, 32M, 500k ({SIZE_RULE})"
        ),
    )
    upload.add_argument(
        "--retries",
        type=_count(0, 100),
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"attempts after a failed chunk, with growing pauses (default {DEFAULT_RETRIES})",
    )
    upload.add_argument(
        "--expire-after",
        type=_duration,
        metavar="DURATION",
        help="delete the file after this long, e.g. 12h or 7d (the server's limit still applies)",
    )
    upload.add_argument(
        "--max-downloads",
        type=_count(1, 1_000_000),
        metavar="N",
        help="the link stops working after N downloads (1: a one-time link)",
    )
    _add_password(upload)
    upload.add_argument("--json", action="store_true", help="print one JSON object per file")
    upload.set_defaults(func=run_upload)

    download = subparsers.add_parser(
        "download",
        help="download a file, resumable, verified by SHA-256",
        description="Download to PATH.part, resume it after a cut, check the SHA-256 the server "
        "advertises, then rename it into place.",
    )
    download.add_argument("url", type=_server_url, metavar="URL")
    download.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="file to write, or a folder for the server's file name (default: current folder)",
    )
    download.add_argument(
        "--retries",
        type=_count(0, 100),
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"resumptions after a cut connection (default {DEFAULT_RETRIES})",
    )
    download.add_argument(
        "--no-flush",
        dest="flush",
        action="store_false",
        help="leave the file in the page cache for the kernel to write back, no fsync: faster "
        "when the disk is slower than the network, but a crash soon after may lose the file "
        "(still verified, and renamed into place only when whole)",
    )
    _add_password(download)
    download.add_argument("--json", action="store_true", help="print the result as JSON")
    download.set_defaults(func=run_download)


def _usage_error(command: str, message: str) -> int:
    print(f"pyfiledrop {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _interrupted(reporter: Reporter, what: str) -> int:
    reporter.close()
    print(f"interrupted; run the same command again to resume the {what}", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_upload(args: argparse.Namespace) -> int:
    if not args.url:
        return _usage_error("upload", f"give the server with --url URL or ${URL_ENVIRONMENT}")
    files: list[Path] = args.files
    for path in files:
        if not path.is_file():
            problem = "is not a regular file" if path.exists() else "no such file"
            return _usage_error("upload", f"{path}: {problem}")
        if not os.access(path, os.R_OK):
            return _usage_error("upload", f"{path}: not readable")
    options = UploadOptions(
        url=args.url,
        chunk_size=args.chunk_size,
        parallel=args.parallel,
        retries=args.retries,
        expires_in=args.expire_after,
        max_downloads=args.max_downloads,
    )
    reporter = make_reporter()
    failed = 0
    tls = not wire.usable(options.url)
    with make_client(options.parallel + 1, password=args.password, tls=tls) as http:
        session = Session(http, options, reporter)
        handles = [reporter.add_file(path.name, path.stat().st_size) for path in files]
        try:
            for path, handle in zip(files, handles, strict=True):
                try:
                    result = upload_file(session, path, handle)
                except AuthError as error:
                    reporter.end_file(handle)
                    reporter.note(f"error: {_one_line(error)}")
                    return EXIT_REFUSED  # every other file would be refused the same way
                except (TransferError, OSError, httpx.HTTPError) as error:
                    failed += 1
                    reporter.end_file(handle)
                    reporter.note(f"error: {_one_line(error)}")
                    continue
                reporter.end_file(handle)
                reporter.result(
                    json.dumps(result.as_json()) if args.json else upload_summary(result)
                )
        except KeyboardInterrupt:
            return _interrupted(reporter, "upload")
        finally:
            session.close()
            reporter.close()
    return EXIT_FAILED if failed else EXIT_OK


def run_download(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    if output is not None and not output.is_dir() and not output.absolute().parent.is_dir():
        return _usage_error("download", f"{output}: its folder does not exist")
    reporter = make_reporter()
    with make_client(2, password=args.password, tls=not wire.usable(args.url)) as http:
        try:
            result = download_file(
                http, args.url, output, reporter, retries=args.retries, flush=args.flush
            )
        except (TransferError, OSError, httpx.HTTPError) as error:
            reporter.note(f"error: {_one_line(error)}")
            reporter.close()
            return EXIT_FAILED
        except KeyboardInterrupt:
            return _interrupted(reporter, "download")
        reporter.result(json.dumps(result.as_json()) if args.json else download_summary(result))
        reporter.close()
    return EXIT_OK


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    return " ".join(str(error).split())


def main(argv: Sequence[str] | None = None) -> int:
    """`pyfiledrop upload|download ...`: the client alone, without the server's modules."""
    # The same first line as `pyfiledrop`'s own parser: an argument error reads the same
    # whichever parser `pyfiledrop upload ...` went through.
    parser = argparse.ArgumentParser(
        prog="pyfiledrop", usage="%(prog)s [-h] [--version] COMMAND ..."
    )
    register(
        parser.add_subparsers(dest="command", metavar="COMMAND", prog="pyfiledrop", required=True)
    )
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
