"""The HTTP guard: the per-address rate limit of anonymous requests and the ``X-RateLimit-*``
headers, limits before parsing, decompression with ratio limits, request ids, headers, the access
log (redacted) and latency metrics. A pure ASGI middleware, so nothing is buffered twice.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from thingbucket.access.audit import RequestInfo, request_info
from thingbucket.config import LimitsSettings
from thingbucket.errors import AppError, Invalid, TooLarge, UnsupportedMedia
from thingbucket.kit.redact import SECRET_QUERY, redact_path, redact_query
from thingbucket.metrics import Metrics
from thingbucket.web.errors import render
from thingbucket.web.ratelimit import CHARGED, limit_address, rate_headers

if TYPE_CHECKING:
    from thingbucket.runtime import Runtime

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("thingbucket.access")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})
# The broker's hooks stand for device CONNECTs and publishes, which are limited per thing.
_NOT_ADDRESS_LIMITED = ("/api/v1/mqtt/",)


class UriTooLong(AppError):
    kind = "uri_too_long"
    code = "URI_TOO_LONG"
    message = "The URL is too long."


class TooManyParameters(Invalid):
    code = "TOO_MANY_PARAMETERS"
    message = "Too many query parameters."


class CredentialsInUrl(Invalid):
    code = "CREDENTIALS_IN_URL"
    message = "Credentials are not accepted in the URL; send them in a header."


class NulInUrl(Invalid):
    code = "INVALID_URL"
    message = "The URL holds a NUL character (%00)."


class UnsupportedEncoding(UnsupportedMedia):
    code = "UNSUPPORTED_ENCODING"
    message = "Content-Encoding must be identity, gzip or deflate (one layer)."


def _presents_credential(scope: Scope) -> bool:
    return any(name in _CREDENTIAL_HEADERS for name, _ in scope["headers"])


def _is_ingest(path: str) -> bool:
    return path.endswith(("/points", "/points/"))


def _decompress(body: bytes, encoding: str, limits: LimitsSettings) -> bytes:
    """Inflate one layer, stopping as soon as the size or the ratio limit is passed."""
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    chunk = 64 * 1024
    view = memoryview(body)
    consumed = 0
    try:
        while consumed < len(body) or inflater.unconsumed_tail:
            data = inflater.unconsumed_tail or view[consumed : consumed + chunk]
            if not inflater.unconsumed_tail:
                consumed += len(data)
            out += inflater.decompress(data, chunk)
            if len(out) > limits.decompressed_bytes or (
                len(out) > 1024 * 1024 and len(out) > limits.compression_ratio * max(consumed, 1)
            ):
                raise TooLarge("The decompressed body is too large.")
            if inflater.eof:
                break
        out += inflater.flush()
    except zlib.error:
        raise Invalid(
            "The body is not valid " + encoding + " data.", code="INVALID_ENCODING"
        ) from None
    if not inflater.eof:
        raise Invalid("The compressed body is truncated.", code="INVALID_ENCODING")
    return bytes(out)


class GuardMiddleware:
    def __init__(self, app: ASGIApp, limits: LimitsSettings, metrics: Metrics) -> None:
        self.app = app
        self.limits = limits
        self.metrics = metrics
        self._rt: Runtime | None = None

    def _runtime(self, scope: Scope) -> Runtime | None:
        if self._rt is None:
            state = getattr(scope.get("app"), "state", None)
            self._rt = getattr(state, "runtime", None)
        return self._rt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        scope["thingbucket.request_id"] = request_id
        client = scope.get("client")
        token = request_info.set(
            RequestInfo(
                surface="native", source_ip=client[0] if client else None, request_id=request_id
            )
        )
        status_holder = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.extend(rate_headers(scope))
                message["headers"] = headers
            await send(message)

        rt = self._runtime(scope)
        limited = rt is not None and not scope["path"].startswith(_NOT_ADDRESS_LIMITED)
        credentialed = _presents_credential(scope)
        try:
            try:
                if rt is not None and limited and not credentialed:
                    await limit_address(rt, scope)
                receive = await self._guard(scope, receive)
            except AppError as exc:
                await render(exc)(scope, receive, send_wrapper)
                return
            await self.app(scope, receive, send_wrapper)
        finally:
            if rt is not None and limited and credentialed and not scope.get(CHARGED):
                # A credential that nothing read (an open route, a refusal before authentication):
                # the request was anonymous after all, and counts against its address.
                await rt.ratelimit.check_address(request_info.get().source_ip)
            request_info.reset(token)
            self._log(scope, status_holder["status"], time.perf_counter() - started, request_id)

    async def _guard(self, scope: Scope, receive: Receive) -> Receive:
        limits = self.limits
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        if len(raw_path) + len(query) > limits.url_bytes:
            raise UriTooLong()
        if b"%00" in raw_path or b"%00" in query or "\x00" in scope["path"]:
            raise NulInUrl()  # no id, name or filter holds one, and PostgreSQL refuses them
        if query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            if len(pairs) > limits.query_params:
                raise TooManyParameters()
            if any(k.lower() in SECRET_QUERY for k, _ in pairs):
                raise CredentialsInUrl()
        if scope["method"] not in _BODY_METHODS:
            return receive
        limit = limits.ingest_body_bytes if _is_ingest(scope["path"]) else limits.control_body_bytes
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                if int(length) > limit:
                    raise TooLarge()
            except ValueError:
                raise Invalid("Content-Length is not a number.") from None
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding not in ("identity", "gzip", "deflate", ""):
            raise UnsupportedEncoding()
        body = await self._read(receive, limit)
        if encoding in ("gzip", "deflate"):
            body = _decompress(body, encoding, limits)
            scope["headers"] = [
                (k, v)
                for k, v in scope["headers"]
                if k not in (b"content-encoding", b"content-length")
            ] + [(b"content-length", str(len(body)).encode())]
        return _replay(body, receive)

    async def _read(self, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _log(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or redact_path(scope["path"])
        self.metrics.requests.labels(template, scope["method"], f"{status // 100}xx").observe(
            elapsed
        )
        if access_log.isEnabledFor(logging.INFO):
            principal = getattr(scope.get("state", {}).get("principal"), "label", "-")
            query = scope.get("query_string", b"").decode("latin-1")
            access_log.info(
                "%s %s%s %d %.1fms principal=%s request_id=%s",
                scope["method"],
                template,
                "?" + redact_query(query) if query else "",
                status,
                elapsed * 1000,
                principal,
                request_id,
            )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
