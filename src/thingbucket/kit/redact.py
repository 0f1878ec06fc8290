"""One redaction for logs, error reports, the audit writer and debug output (security.md §7.3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

MASK = "[redacted]"

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "cookie",
        "set-cookie",
        "onboardingsession",
    }
)
SECRET_QUERY = frozenset(
    {
        "access_token",
        "bearer_token",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "password",
        "client_secret",
    }
)
SECRET_FIELDS = frozenset(
    f.lower()
    for f in (
        "password",
        "_password",
        "thingPassword",
        "newPassword",
        "client_secret",
        "secret",
        "access_token",
        "accessToken",
        "_accessToken",
        "refresh_token",
        "device_token",
        "forwarding_token",
        "legacy_api_key",
        "key",
        "value",
    )
)
CREDENTIAL_PREFIXES = ("tb_at_", "tb_rt_", "tb_p_", "tb_k_", "tb_d_", "dakkio_")
_JWT = re.compile(r"^[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*$")


def mask_credential(value: str) -> str:
    """``tb_k_…`` for a credential with a listed prefix, else the plain mask."""
    for prefix in CREDENTIAL_PREFIXES:
        if value.startswith(prefix):
            return prefix + "…"
    return MASK


def _secret_segment(segment: str) -> bool:
    return segment.startswith(CREDENTIAL_PREFIXES) or bool(_JWT.match(segment))


def redact_path(path: str) -> str:
    return "/".join(mask_credential(s) if _secret_segment(s) else s for s in path.split("/"))


def redact_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, MASK if k.lower() in SECRET_QUERY else v) for k, v in pairs])


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k: (mask_credential(_after_scheme(v)) if k.lower() in SECRET_HEADERS else v)
        for k, v in headers.items()
    }


def _after_scheme(value: str) -> str:
    parts = value.strip().split(None, 1)
    return parts[-1] if parts else ""


def redact(value: Any) -> Any:
    """Mask secret fields by name (any case) and credential-looking strings, recursively."""
    if isinstance(value, Mapping):
        return {
            k: (MASK if isinstance(k, str) and k.lower() in SECRET_FIELDS else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str) and _secret_segment(value):
        return mask_credential(value)
    return value
