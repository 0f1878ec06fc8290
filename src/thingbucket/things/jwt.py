"""Thing JWT verification, pinned as security.md §3.5 says.

The algorithm comes from the registered key, never from the token; ``exp``, ``iat``, ``iss``,
``sub`` and ``aud`` are required; the lifetime is capped; audiences are compared after
normalisation against a set built once at start-up. Every failure has a reason for the audit log
and looks the same to the client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from thingbucket.errors import Invalid
from thingbucket.kit import jsonstrict

MAX_TOKEN_BYTES = 8 * 1024
FORBIDDEN_HEADERS = ("jku", "x5u", "x5c", "jwk", "crit")
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]*$")


class InvalidKey(Invalid):
    code = "INVALID_KEY"
    message = (
        "The public key must be an SPKI PEM of an RSA key (2048-8192 bits) or an EC P-256 key."
    )


class JwtRejected(Exception):
    """A refused token; ``reason`` goes to the audit log, never to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedKey:
    algorithm: str  # RS256 | ES256
    fingerprint: str
    pem: str


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    algorithm: str
    pem: str
    fingerprint: str


def parse_public_key(pem: str) -> ParsedKey:
    """Accept an SPKI PEM of RSA 2048-8192 bits (RS256) or EC P-256 (ES256); refuse the rest."""
    text = pem.strip()
    if not text.startswith("-----BEGIN PUBLIC KEY-----") or len(text) > 16_384:
        raise InvalidKey()
    try:
        key = serialization.load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        raise InvalidKey() from None
    if isinstance(key, rsa.RSAPublicKey):
        if not 2048 <= key.key_size <= 8192:
            raise InvalidKey()
        algorithm = "RS256"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        algorithm = "ES256"
    else:
        raise InvalidKey()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    canonical = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return ParsedKey(algorithm, hashlib.sha256(der).hexdigest(), canonical)


def normalise_url(url: str) -> str | None:
    """Scheme and host lower-cased, default port dropped, repeated and trailing '/' removed.

    Returns None for anything with userinfo, a query or a fragment, or that is not http(s).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return None
    if "?" in url or "#" in url:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is not None and not (
        (scheme == "https" and port == 443) or (scheme == "http" and port == 80)
    ):
        host = f"{host}:{port}"
    path = re.sub(r"/+", "/", parts.path).rstrip("/")
    return f"{scheme}://{host}{path}"


def accepted_audiences(public_url: str, loopback_ports: Iterable[int] = ()) -> frozenset[str]:
    """The native audience set: the public URL and its /api/v1, plus loopback forms per port."""
    bases = [public_url]
    for port in loopback_ports:
        bases += [f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"]
    out: set[str] = set()
    for base in bases:
        for candidate in (base, base.rstrip("/") + "/api/v1"):
            norm = normalise_url(candidate)
            if norm:
                out.add(norm)
    return frozenset(out)


def _b64json(segment: str) -> dict[str, Any]:
    if not _SEGMENT.match(segment):
        raise JwtRejected("malformed")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = jsonstrict.loads(raw, max_depth=8)
    except (binascii.Error, ValueError):
        raise JwtRejected("malformed") from None
    if not isinstance(value, dict):
        raise JwtRejected("malformed")
    return value


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a token, unverified, after the shape checks."""
    if len(token.encode()) > MAX_TOKEN_BYTES:
        raise JwtRejected("malformed")
    segments = token.split(".")
    if len(segments) != 3:
        raise JwtRejected("malformed")
    header = _b64json(segments[0])
    payload = _b64json(segments[1])
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
        raise JwtRejected("alg_not_allowed")
    if any(name in header for name in FORBIDDEN_HEADERS):
        raise JwtRejected("malformed")
    return header, payload


class ThingJwtVerifier:
    def __init__(
        self,
        audiences: frozenset[str],
        *,
        leeway_s: int = 60,
        max_lifetime_s: int = 86_400,
        max_future_iat_s: int = 600,
        cache_size: int = 4096,
    ) -> None:
        self.audiences = audiences
        self._leeway = leeway_s
        self._max_lifetime = max_lifetime_s
        self._max_future_iat = max_future_iat_s
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size

    def _load(self, record: KeyRecord) -> Any:
        key = self._cache.get(record.fingerprint)
        if key is None:
            key = serialization.load_pem_public_key(record.pem.encode())
            self._cache[record.fingerprint] = key
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(record.fingerprint)
        return key

    def _audience_ok(self, aud: Any) -> bool:
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not values:
            return False
        return any(isinstance(v, str) and normalise_url(v) in self.audiences for v in values)

    def verify(
        self,
        token: str,
        thing_id: str,
        keys: Sequence[KeyRecord],
        *,
        now: float,
    ) -> dict[str, Any]:
        """The verified claims, or JwtRejected(reason)."""
        header, _ = peek(token)
        alg = header["alg"]
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise JwtRejected("malformed")
        candidates = [k for k in keys if kid is None or k.id == kid]
        if not candidates:
            raise JwtRejected("unknown_key")
        candidates = [k for k in candidates if k.algorithm == alg]
        if not candidates:
            raise JwtRejected("alg_not_allowed")
        claims: dict[str, Any] | None = None
        for record in candidates:
            try:
                claims = jwt.decode(
                    token,
                    self._load(record),
                    algorithms=[record.algorithm],
                    leeway=self._leeway,
                    options={
                        "require": ["exp", "iat", "iss", "sub", "aud"],
                        "verify_aud": False,
                        "verify_iss": False,
                        "verify_iat": False,
                        "verify_sub": False,
                        "verify_jti": False,
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError:
                raise JwtRejected("expired") from None
            except jwt.ImmatureSignatureError:
                raise JwtRejected("not_yet_valid") from None
            except jwt.MissingRequiredClaimError:
                raise JwtRejected("claims_missing") from None
            except jwt.InvalidTokenError:
                raise JwtRejected("malformed") from None
        if claims is None:
            raise JwtRejected("bad_signature")
        return self._check_claims(claims, thing_id, now)

    def _check_claims(self, claims: dict[str, Any], thing_id: str, now: float) -> dict[str, Any]:
        sub, iss, iat, exp = claims["sub"], claims["iss"], claims["iat"], claims["exp"]
        if sub != thing_id:
            raise JwtRejected("claims_missing")
        if iss != sub and not (isinstance(iss, str) and normalise_url(iss) in self.audiences):
            raise JwtRejected("claims_missing")
        if not self._audience_ok(claims["aud"]):
            raise JwtRejected("wrong_audience")
        if not isinstance(iat, (int, float)) or isinstance(iat, bool):
            raise JwtRejected("claims_missing")
        if iat > now + self._max_future_iat:
            raise JwtRejected("not_yet_valid")
        if exp - iat > self._max_lifetime:
            raise JwtRejected("lifetime_too_long")
        return claims
