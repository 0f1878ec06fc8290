"""Generated credentials and their keyed digests (security.md §3.1-3.2).

Verified-only secrets are stored as HMAC-SHA-256 under a pepper derived from the server's secret key
with HKDF-SHA-256, so a database dump holds nothing usable and a lookup costs the same whether the
credential exists or not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PEPPER_INFO = b"thingbucket credential pepper v1"
LISTED_PREFIX_CHARS = 12


def derive_key(secret_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret_key)


def generate(prefix: str, nbytes: int = 32) -> str:
    """``prefix`` + 43 base64url characters (256 bits) for nbytes=32."""
    return prefix + secrets.token_urlsafe(nbytes)


def listed_prefix(secret: str) -> str:
    """What listings show of a native credential: its first 12 characters."""
    return secret[:LISTED_PREFIX_CHARS]


class Digester:
    """Keyed digests under the current pepper, and the previous ones for rotation."""

    def __init__(self, secret_key: bytes, previous: Sequence[bytes] = ()) -> None:
        self._current = derive_key(secret_key, PEPPER_INFO)
        self._previous = [derive_key(k, PEPPER_INFO) for k in previous]

    def digest(self, secret: str) -> bytes:
        return hmac.new(self._current, secret.encode(), hashlib.sha256).digest()

    def candidates(self, secret: str) -> list[bytes]:
        """The digest under every pepper still accepted, current first."""
        data = secret.encode()
        return [self.digest(secret)] + [
            hmac.new(p, data, hashlib.sha256).digest() for p in self._previous
        ]
