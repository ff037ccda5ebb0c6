from __future__ import annotations

import pytest

from pyfiledrop.names import numbered, sanitize


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system32", "system32"),
        ("a\x00b.txt", "a_b.txt"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("..", "file"),
        ("", "file"),
        (None, "file"),
        (".hidden", "hidden"),
        ("evil\u2215slash.txt", "evil\u2215slash.txt"),
        ("full\uff0fwidth.txt", "full_width.txt"),
        ("line\r\nbreak.txt", "line__break.txt"),
        ("naïve résumé.pdf", "naïve résumé.pdf"),
    ],
)
def test_sanitize(raw: str | None, safe: str) -> None:
    assert sanitize(raw) == safe


def test_overlong_names_keep_their_extension() -> None:
    name = sanitize("é" * 500 + ".tar.gz")
    assert len(name.encode()) <= 200
    assert name.endswith(".tar.gz")


def test_numbered() -> None:
    assert numbered("a.txt", 0) == "a.txt"
    assert numbered("a.txt", 2) == "a (2).txt"
    assert numbered("a.tar.gz", 1) == "a (1).tar.gz"
    assert numbered("README", 1) == "README (1)"
