"""`create_app(cfg)`: the FastAPI application (routes, auth, limits, lifespan).

The lifespan opens the audit log, starts the guard's worker processes (`guard_pool.py`), then
loads the model in a worker thread: `/health` answers at once (liveness), `/ready` and the API
answer 503 until the model is loaded and every guard worker has built its guard. At shutdown
(SIGTERM) uvicorn stops accepting connections and lets in-flight requests finish; then the
lifespan closes the batcher, the backend and the audit log, in that order.

API keys are checked before the body is read, so an unauthenticated client learns nothing about
the schema, and its body is never parsed.

`POST /v1/feedback` (serve/feedback.py) needs no model: it is answered while the model loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from clinical_rlhf.config import Config
from clinical_rlhf.errors import ClinicalRLHFError, ConfigError
from clinical_rlhf.safety.audit_key import configured_key
from clinical_rlhf.serve.audit import AuditWriter
from clinical_rlhf.serve.auth import KeyStore, RateLimiter, retry_after_header
from clinical_rlhf.serve.backends import Backend, build_backend
from clinical_rlhf.serve.errors import APIError, error_response, install_error_handlers
from clinical_rlhf.serve.feedback import FeedbackRecorder
from clinical_rlhf.serve.gate import SafetyGate
from clinical_rlhf.serve.metrics import ServeMetrics
from clinical_rlhf.serve.middleware import KEY_ID_SCOPE_KEY, BodyLimitMiddleware, RequestMetricsMiddleware
from clinical_rlhf.serve.responses import completion_body, stream_events
from clinical_rlhf.serve.schemas import ChatCompletionRequest, CompletionRequest, FeedbackRequest
from clinical_rlhf.serve.service import ServingCore

logger = logging.getLogger("clinical_rlhf.serve")
API_KEY_SCOPE_KEY = "clinical_rlhf.api_key"


class ServerState:
    """What the routes need, and how far startup has got (`loading`, `ready`, `failed`)."""

    def __init__(self, cfg: Config, gate: SafetyGate, metrics: ServeMetrics,
                 load_backend: Callable[[], Backend]) -> None:
        self.cfg = cfg
        self.served_model = cfg.serve.served_model_name or cfg.model.name
        self.gate = gate
        self.metrics = metrics
        self.load_backend = load_backend
        self.core: ServingCore | None = None
        self.audit: AuditWriter | None = None
        self.feedback: FeedbackRecorder | None = None
        """Remembers served completions for `POST /v1/feedback`; None when `serve.feedback.enabled` is off."""
        self.status = "loading"
        self.error: BaseException | None = None
        """Why startup failed (re-raised by the runner after the server stops)."""
        self.on_fatal: Callable[[], None] = lambda: None
        """Called when the model cannot be loaded; the runner makes it stop the server."""

    async def load(self, audit: AuditWriter) -> None:
        try:  # the guard workers build their guards while the model loads
            backend, _ = await asyncio.gather(asyncio.to_thread(self.load_backend),
                                              asyncio.to_thread(self.gate.pool.wait_ready))
        except Exception as exc:  # noqa: BLE001 - reported by the runner as one clear error
            self.status, self.error = "failed", exc
            logger.error("the model or the guard workers could not be loaded (%s); stopping", type(exc).__name__)
            self.on_fatal()
            return
        core = ServingCore(self.cfg.serve, self.served_model, self.gate, backend, audit, self.metrics)
        core.start()
        self.core, self.status = core, "ready"
        self.metrics.ready.set(1)
        logger.info("ready: %s as `%s`", backend.name, self.served_model)

    def require_core(self) -> ServingCore:
        if self.core is None:
            raise APIError(503, "the model is still loading; retry when GET /ready answers 200", "not_ready",
                           headers={"Retry-After": "5"})
        return self.core


class AuthMiddleware:
    """Bearer API key and per-key rate limit on `/v1/`, before the body is read."""

    def __init__(self, app: ASGIApp, keys: KeyStore, limiter: RateLimiter) -> None:
        self.app = app
        self.keys = keys
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        scheme, _, presented = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        challenge = {"WWW-Authenticate": "Bearer"}
        if scheme.lower() != "bearer" or not presented.strip():
            response = error_response(401, "missing API key: send the header Authorization: Bearer <key>",
                                      "missing_api_key", headers=challenge)
        elif (key := self.keys.authenticate(presented.strip())) is None:
            response = error_response(401, "invalid API key", "invalid_api_key", headers=challenge)
        elif (wait := self.limiter.acquire(key)) > 0:
            scope[KEY_ID_SCOPE_KEY] = key.id
            response = error_response(429, f"rate limit of this API key reached; retry in {wait:.1f} s",
                                      "rate_limit_exceeded", headers=retry_after_header(wait))
        else:
            scope[KEY_ID_SCOPE_KEY] = key.id
            scope[API_KEY_SCOPE_KEY] = key
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


def serving_run_dir(cfg: Config) -> Path:
    """Where the serve audit log and clinicians' feedback go: the run the served checkpoint belongs
    to (`<run>/checkpoints/<name>`), so a model's training and serving records sit together;
    without a checkpoint in a run, the config's `runs_dir/run_name`."""
    checkpoint = cfg.serve.checkpoint
    if checkpoint is not None and Path(checkpoint).resolve().parent.name == "checkpoints":
        return Path(checkpoint).resolve().parent.parent
    return cfg.run_dir


def create_app(cfg: Config, load_backend: Callable[[], Backend] | None = None, *,
               environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app for `cfg`. `load_backend` (blocking, run in a thread at startup) defaults to
    `build_backend(cfg)`; `environ` (default `os.environ`) supplies API keys from the environment
    and the upstream's key of a remote backend."""
    if not cfg.safety.audit.enabled:
        raise ConfigError("serving writes an audit record for every answer; set safety.audit.enabled: true")
    environ = os.environ if environ is None else environ
    keys = KeyStore.from_config(cfg.serve, environ)
    limiter = RateLimiter(cfg.serve.rate_limit.requests_per_minute, cfg.serve.rate_limit.burst)
    metrics = ServeMetrics()
    load_backend = load_backend or (lambda: build_backend(cfg, environ=environ))
    audit_key = configured_key(cfg.safety.audit)  # a missing key file stops the start, not a request
    state = ServerState(cfg, SafetyGate.from_config(cfg), metrics, load_backend)
    run_dir = serving_run_dir(cfg)
    if cfg.serve.feedback.enabled:
        state.feedback = FeedbackRecorder(cfg.serve.feedback, run_dir, state.gate, metrics)
    audit_cfg = cfg.safety.audit
    audit_path = cfg.serve.audit_file or run_dir / "serve_audit.jsonl"

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        with contextlib.ExitStack() as stack:
            try:
                audit = stack.enter_context(AuditWriter(audit_path, audit_cfg.fsync, audit_cfg.store_raw_text,
                                                        key=audit_key))
            except Exception as exc:  # noqa: BLE001 - one clear error, raised again by the runner
                reason = (f"the audit log {audit_path} cannot be opened ({exc.strerror}); fix serve.audit_file "
                          f"or the permissions of its directory") if isinstance(exc, OSError) else str(exc)
                state.status, state.error = "failed", ClinicalRLHFError(reason)
                raise state.error from None
            state.audit = audit
            state.gate.pool.start()
            stack.callback(state.gate.pool.close)
            stack.callback(_log_anchor, audit, metrics)  # the last anchor, at shutdown
            anchoring = asyncio.create_task(_anchor_periodically(audit, metrics, cfg.serve.audit_anchor_seconds))
            stack.callback(anchoring.cancel)
            if state.feedback is not None:
                await _open_feedback(state, state.feedback)
                stack.callback(state.feedback.close)
            loading = asyncio.create_task(state.load(audit))
            try:
                yield
            finally:
                if not loading.done():  # stopped while loading: the load thread cannot be interrupted
                    await asyncio.shield(loading)
                if state.core is not None:
                    await state.core.close()
                metrics.ready.set(0)

    app = FastAPI(title="Clinical RLHF", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.serving = state
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.serve.max_body_bytes)
    app.add_middleware(AuthMiddleware, keys=keys, limiter=limiter)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    _add_routes(app, state)
    return app


def _log_anchor(audit: AuditWriter, metrics: ServeMetrics) -> None:
    """Log the audit chain's anchor and set its Prometheus series: copies of the head outside the log."""
    try:
        anchor = audit.log.anchor()
    except Exception as exc:  # noqa: BLE001 - an unreadable head is logged, serving goes on
        logger.warning("audit anchor not taken (%s)", type(exc).__name__)
        return
    metrics.audit_anchor.set(anchor.count, anchor.head_hash)
    logger.info("audit anchor: %s count=%d head=%s (check with `clinical-rlhf audit verify %s --expect-count %d "
                "--expect-head %s`)", audit.path, anchor.count, anchor.head_hash, audit.path, anchor.count,
                anchor.head_hash)


async def _anchor_periodically(audit: AuditWriter, metrics: ServeMetrics, seconds: float) -> None:
    while True:
        await asyncio.to_thread(_log_anchor, audit, metrics)
        await asyncio.sleep(seconds)


async def _open_feedback(state: ServerState, recorder: FeedbackRecorder) -> None:
    try:
        await asyncio.to_thread(recorder.open)
    except OSError as exc:
        where = exc.filename or recorder.preferences_path.parent
        reason = (f"the feedback file or directory {where} cannot be used ({exc.strerror}); fix "
                  f"serve.feedback.preferences_file / ratings_file or the permissions of their directory")
        state.status, state.error = "failed", ClinicalRLHFError(reason)
        raise state.error from None


def _respond(answer, stream: bool, include_usage: bool, on_sent: Callable[[], None]) -> Response:
    """The response; `on_sent` runs once the whole answer is handed over (a stream: its last
    event, so a stream the client dropped is not remembered for feedback)."""
    headers = {"x-request-id": answer.request_id}
    if not stream:
        on_sent()
        return JSONResponse(completion_body(answer), headers=headers)

    async def events():  # async, so Starlette sends each chunk from the event loop (no thread hop)
        for event in stream_events(answer, include_usage):
            yield event
        on_sent()

    return StreamingResponse(events(), media_type="text/event-stream", headers={**headers, "Cache-Control": "no-cache"})


def _add_routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        body: dict[str, Any] = {"status": state.status, "model": state.served_model}
        if state.core is not None:
            body["backend"] = state.core.backend.name
        return JSONResponse(body, status_code=200 if state.status == "ready" else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def model_card() -> dict[str, Any]:
        return {"id": state.served_model, "object": "model", "created": 0, "owned_by": "clinical-rlhf"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id:path}")  # `:path`: ids such as `org/model` hold a slash
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != state.served_model:
            raise APIError(404, f"the model `{model_id}` does not exist on this server; it serves "
                                f"`{state.served_model}` (GET /v1/models lists it)", "model_not_found",
                           param="model")
        return model_card()

    async def complete(body: ChatCompletionRequest | CompletionRequest, request: Request) -> Response:
        key = request.scope[API_KEY_SCOPE_KEY]
        answer = await state.require_core().answer(body, key)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        feedback = state.feedback
        remember = (lambda: feedback.remember(body, answer, key.id)) if feedback is not None else (lambda: None)
        return _respond(answer, body.stream, include_usage, remember)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        return await complete(body, request)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await complete(body, request)

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackRequest, request: Request) -> JSONResponse:
        if state.feedback is None or state.audit is None:
            raise APIError(404, "feedback is turned off on this server (serve.feedback.enabled: false); ask its "
                                "operator to turn it on", "feedback_disabled")
        result = await state.feedback.submit(body, request.scope[API_KEY_SCOPE_KEY], state.audit)
        return JSONResponse(result, headers={"x-request-id": result["id"]})

