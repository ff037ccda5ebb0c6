"""File names from clients, made safe to use as a single path component on any system."""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Iterator

MAX_NAME_BYTES = 200  # leaves room for " (12345)" within the usual 255-byte limit
FALLBACK_NAME = "file"
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)", re.IGNORECASE)


def sanitize(name: str | None) -> str:
    """A printable basename with no separators, controls or reserved forms; never empty."""
    if not name:
        return FALLBACK_NAME
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Unicode look-alikes of separators and dots (fullwidth, division slash...) become plain
    # characters under NFKC; treat what NFKC turns into a separator as one.
    name = "".join("_" if unicodedata.normalize("NFKC", ch) in "/\\" else ch for ch in name)
    name = _UNSAFE.sub("_", name)
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"))
    name = name.strip(" .")
    if _WINDOWS_RESERVED.match(name):
        name = "_" + name
    name = _truncate(name)
    return name or FALLBACK_NAME


def _truncate(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, ext = split_extension(name)
    if len(ext.encode("utf-8")) > 20:
        stem, ext = name, ""
    budget = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
    return stem + ext


def split_extension(name: str) -> tuple[str, str]:
    """`archive.tar.gz` -> (`archive`, `.tar.gz`); `notes` -> (`notes`, ``)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    if stem.lower().endswith(".tar"):
        return stem[:-4], name[len(stem) - 4 :]
    return stem, "." + ext


def numbered(name: str, number: int) -> str:
    """`name.ext`, then `name (1).ext`, `name (2).ext`..."""
    if number == 0:
        return name
    stem, ext = split_extension(name)
    return f"{stem} ({number}){ext}"


NUMBERED_NAMES = 100


def name_candidates(name: str) -> Iterator[str]:
    """Names on disk for `name`: itself, `name (1).ext` up to `(99)`, then random suffixes.

    Uniqueness on disk is the server's business: it never fails for an uploader, and costs no
    more than a hundred tries however many files of that name exist.
    """
    for number in range(NUMBERED_NAMES):
        yield numbered(name, number)
    stem, ext = split_extension(name)
    while True:
        yield f"{stem} ({secrets.token_hex(4)}){ext}"
