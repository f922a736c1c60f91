"""ASGI middleware: per-request metrics and one log line per request (no text, no key)."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clinical_rlhf.serve.errors import error_response, log_failure
from clinical_rlhf.serve.metrics import ServeMetrics, endpoint_label

logger = logging.getLogger("clinical_rlhf.serve")

ENDPOINT_SCOPE_KEY = "clinical_rlhf.endpoint"
KEY_ID_SCOPE_KEY = "clinical_rlhf.key_id"


class RequestMetricsMiddleware:
    """Counts every HTTP request by endpoint and status and times it until its body is sent."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_label(scope["path"])
        scope[ENDPOINT_SCOPE_KEY] = endpoint
        status, started = 500, False
        start = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record)
        except Exception as exc:  # noqa: BLE001 - a bug must not reach the server's log with its message
            # Handled here, not by an `Exception` handler: Starlette re-raises after calling that,
            # and uvicorn would log the message, which may quote the request's text.
            log_failure("request failed", exc)
            if not started:
                response = error_response(500, "the server failed while answering; the failure is logged, "
                                               "please retry", "internal_error")
                await response(scope, receive, send)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.in_flight.dec()
            self.metrics.count_request(endpoint, status, seconds)
            if endpoint not in ("health", "ready", "metrics"):
                logger.info("%s %s %d %.3fs key=%s", scope["method"], endpoint, status, seconds,
                            scope.get(KEY_ID_SCOPE_KEY, "-"))


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: at once when Content-Length says so, else as soon as the
    streamed body passes the limit (it is read whole before the app sees it; bodies are small)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"the request body is larger than this server accepts ({self.max_bytes} "
                                       f"bytes, serve.max_body_bytes); send a shorter conversation",
                                  "body_too_large", headers={"Connection": "close"})
        await response(scope, receive, send)
