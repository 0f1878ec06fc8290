"""Credentials from HTTP headers to a Principal (security.md §3.3).

The scheme is matched case-insensitively; two credentials that disagree are refused; a credential
that is present but not valid is never ignored. Every rejection looks the same to the client; the
reason goes to the audit log.
"""

from __future__ import annotations

from starlette.requests import Request

from thingbucket import credentials
from thingbucket.access.principal import ANONYMOUS, Principal
from thingbucket.errors import Invalid, InvalidCredentials
from thingbucket.runtime import Runtime


class AmbiguousCredentials(Invalid):
    code = "AMBIGUOUS_CREDENTIALS"
    message = "The request carries more than one credential."


def _presented(request: Request) -> str | None:
    authorizations = request.headers.getlist("authorization")
    api_keys = request.headers.getlist("x-api-key")
    if len(authorizations) > 1 or len(api_keys) > 1:
        raise AmbiguousCredentials()
    from_header = None
    if authorizations:
        parts = authorizations[0].strip().split(None, 1)
        if len(parts) != 2 or parts[0].lower() not in ("bearer", "bitpool2"):
            raise InvalidCredentials()
        from_header = parts[1].strip()
    from_key = api_keys[0].strip() if api_keys else None
    if from_header is not None and from_key is not None and from_header != from_key:
        raise AmbiguousCredentials()
    return from_header or from_key


async def authenticate_request(rt: Runtime, request: Request) -> Principal:
    secret = _presented(request)
    if not secret:
        return ANONYMOUS
    principal = await credentials.authenticate_cached(rt, secret)
    if principal is None:
        raise InvalidCredentials()
    return principal
