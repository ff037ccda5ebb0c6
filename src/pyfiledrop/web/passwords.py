"""Download passwords: stored as scrypt hashes, checked in constant time, throttled per address.

A recipient who typed the right password gets links carrying a short-lived key (an HMAC of the
target and an expiry under the server's key), so the page works without cookies. Scripts may
send the password itself in `X-Download-Password` instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time

import anyio
from starlette.requests import Request

from pyfiledrop import lifecycle, sharing
from pyfiledrop.errors import Invalid, NotPermitted
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.auth import Throttle
from pyfiledrop.web.watch import client_address

MAX_PASSWORD_CHARS = 1024
KEY_SECONDS = 12 * 3600  # how long links from an unlocked page keep working
PASSWORD_HEADER = "x-download-password"
NEEDED = "this link needs its download password"
# scrypt at the cost OWASP suggests for interactive logins: 16 MiB and ~50 ms per check.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 1024 * 1024}


def valid_password(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PASSWORD_CHARS:
        raise Invalid(f"a download password is 1 to {MAX_PASSWORD_CHARS} characters")
    return value


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)


async def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = await anyio.to_thread.run_sync(_scrypt, password, salt)
    return f"scrypt${salt.hex()}${digest.hex()}"


async def password_matches(secret: str, given: str) -> bool:
    scheme, salt, digest = secret.split("$")
    assert scheme == "scrypt"
    computed = await anyio.to_thread.run_sync(_scrypt, given, bytes.fromhex(salt))
    return hmac.compare_digest(computed, bytes.fromhex(digest))


def _mac(key: bytes, target: str, expires: int) -> str:
    message = f"download-key:{target}:{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


async def make_key(uploads: Uploads, target: str) -> str:
    expires = int(time.time()) + KEY_SECONDS
    return f"{expires}.{_mac(await lifecycle.server_key(uploads.db), target, expires)}"


async def key_valid(uploads: Uploads, target: str, given: str | None) -> bool:
    if not given or "." not in given:
        return False
    raw_expires, mac = given.split(".", 1)
    if not raw_expires.isascii() or not raw_expires.isdigit() or int(raw_expires) < time.time():
        return False
    expected = _mac(await lifecycle.server_key(uploads.db), target, int(raw_expires))
    return hmac.compare_digest(expected, mac)


def throttle(request: Request) -> Throttle:
    """One per app, apart from the upload password's: failures here don't lock the uploader out."""
    state = request.app.state
    found = getattr(state, "download_throttle", None)
    if not isinstance(found, Throttle):
        found = Throttle()
        state.download_throttle = found
    return found


class TooMany(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"too many wrong passwords; try again in {max(1, round(seconds))} s")
        self.seconds = seconds


async def check_password(request: Request, uploads: Uploads, target: str, given: str) -> bool:
    """Try a password against the target's: throttled like the upload password (growing delays,
    then a lockout per address). Raises TooMany while the address is locked out."""
    secret = await sharing.password_hash_of(uploads.db, target)
    if secret is None:
        return True
    limiter = throttle(request)
    address = client_address(request.scope)  # the one way to name a client (trusted proxies)
    locked = limiter.locked_for(address)
    if locked > 0:
        raise TooMany(locked)
    if await password_matches(secret, given):
        limiter.succeed(address)
        return True
    await asyncio.sleep(limiter.fail(address, "a download password"))
    return False


async def is_protected(uploads: Uploads, target: str) -> bool:
    return await sharing.password_hash_of(uploads.db, target) is not None


async def require_access(request: Request, uploads: Uploads, target: str) -> None:
    """For raw downloads: a protected target needs a valid key or the password in a header."""
    if not await is_protected(uploads, target):
        return
    if await key_valid(uploads, target, request.query_params.get("key")):
        return
    given = request.headers.get(PASSWORD_HEADER)
    if given is None:
        raise NotPermitted(NEEDED)
    try:
        matched = await check_password(request, uploads, target, given)
    except TooMany as error:
        raise NotPermitted(str(error)) from None
    if not matched:
        raise NotPermitted("wrong download password")
