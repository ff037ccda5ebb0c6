"""`pyfiledrop upload|download` skip the server's parser; what a user sees must not change."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import pytest

from pyfiledrop import cli
from pyfiledrop.client import cli as client_cli


def _usage_error(argv: list[str], parse: Callable[[list[str]], Any]) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return stderr.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["upload", "--no-such-flag", "f.bin"],
        ["upload"],
        ["download"],
        ["upload", "--parallel", "many", "f.bin"],
    ],
)
def test_argument_errors_read_as_from_the_full_parser(argv: list[str]) -> None:
    full = _usage_error(argv, cli.build_parser().parse_args)
    assert _usage_error(argv, client_cli.main) == full
