"""One handler renders every domain error in the native error shape (security.md §4.3, §6)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from thingbucket.access.principal import Principal
from thingbucket.errors import AppError, ErrorKind, Unauthenticated
from thingbucket.web.responses import ORJSONResponse, error_body

log = logging.getLogger(__name__)

STATUS: dict[ErrorKind, int] = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "uri_too_long": 414,
    "unsupported_media": 415,
    "throttled": 429,
    "unavailable": 503,
    "timeout": 504,
    "internal": 500,
}
WWW_AUTHENTICATE = 'Bearer realm="thingbucket"'
_HTTP_CODES = {
    404: ("NOT_FOUND", "Not found."),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed."),
    413: ("PAYLOAD_TOO_LARGE", "The request is too large."),
}


def render(exc: AppError) -> Response:
    headers: dict[str, str] = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if exc.kind == "unauthenticated":
        headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return ORJSONResponse(
        error_body(exc.error_code, exc.message_text, exc.details),
        status_code=STATUS[exc.kind],
        headers=headers,
    )


def audit_refusal(request: Request, exc: AppError) -> None:
    """Count a 403, or a 404 that may hide something, as ``authz.denied`` (security.md §9).
    Every surface's error handler calls this before rendering."""
    who: Principal | None = getattr(request.state, "principal", None)
    if who is None or who.kind == "anonymous":
        return
    if exc.kind != "forbidden" and not (exc.kind == "not_found" and exc.target is not None):
        return
    reason = f"{exc.error_code} {request.method}"[:64]  # the target says what
    request.app.state.runtime.audit.denied(who, reason=reason, target=exc.target, org_id=exc.org_id)


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    audit_refusal(request, exc)
    who = getattr(request.state, "principal", None)
    if exc.kind == "not_found" and who is not None and who.kind == "anonymous":
        # Routes open to public grants take anonymous callers; what is not public answers them
        # as every other route does without credentials.
        return render(Unauthenticated())
    return render(exc)


def _validation_details(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    code = "VALIDATION_FAILED"
    for err in exc.errors():
        if err.get("type") == "read_only_field":
            code = "READ_ONLY_FIELD"
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        details.append({"field": ".".join(loc), "reason": str(err.get("msg", "invalid"))})
    return code, details[:20]


async def _request_validation(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    code, details = _validation_details(exc)
    message = (
        "The request is not valid."
        if code == "VALIDATION_FAILED"
        else ("The body sets a field that only the server sets.")
    )
    return ORJSONResponse(error_body(code, message, details), status_code=400)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code, message = _HTTP_CODES.get(exc.status_code, ("HTTP_ERROR", str(exc.detail)))
    return ORJSONResponse(
        error_body(code, message), status_code=exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = request.scope.get("thingbucket.request_id")
    log.exception("unhandled error in request %s", request_id)
    return ORJSONResponse(
        error_body("INTERNAL_ERROR", "Internal error.", [{"request_id": request_id}]),
        status_code=500,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
