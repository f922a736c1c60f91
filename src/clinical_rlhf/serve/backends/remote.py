"""Any OpenAI-compatible generation server (vLLM, TGI, another clinical-rlhf server) as a backend.

Chat requests go to the upstream's `/chat/completions` with the conversation as sent (the
upstream applies its model's chat template), completions to `/completions`. Answers come back
whole (no upstream streaming): the gate must see the complete answer before the client sees any
of it. Each request is sent on its own; vLLM and TGI batch continuously on their side.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

import httpx

from clinical_rlhf.config import ServeConfig
from clinical_rlhf.errors import ClinicalRLHFError
from clinical_rlhf.serve.backends.base import GenerationRequest, GenerationResult, UpstreamError
from clinical_rlhf.serve.errors import APIError


class RemoteBackend:
    batches_requests = False

    def __init__(self, base_url: str, model: str, headers: Mapping[str, str], max_connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"remote:{self.base_url}"
        self._headers = dict(headers)
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._client: httpx.AsyncClient | None = None

    @classmethod
    def connect(cls, serve: ServeConfig, environ: Mapping[str, str] | None = None) -> RemoteBackend:
        """Read the upstream key from the environment; ask the upstream for its model when
        `serve.remote.model` is unset (a clear error when it cannot be reached)."""
        environ = os.environ if environ is None else environ
        remote = serve.remote
        key = environ.get(remote.api_key_env) if remote.api_key_env else None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        base_url = str(remote.base_url).rstrip("/")
        model = remote.model or _first_model(base_url, headers, remote.api_key_env)
        return cls(base_url, model, headers, remote.max_connections)

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        return request  # the upstream knows its context length and answers 400 itself

    async def generate(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        if self._client is None:
            self._client = httpx.AsyncClient(headers=self._headers, limits=self._limits)
        return list(await asyncio.gather(*(self._one(request) for request in batch)))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        if request.stop:
            body["stop"] = list(request.stop)
        if request.kind == "chat":
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            return "/chat/completions", body
        body["prompt"] = request.prompt
        return "/completions", body

    async def _one(self, request: GenerationRequest) -> GenerationResult:
        path, body = self._body(request)
        remaining = max(0.001, request.deadline - time.monotonic()) if request.deadline != float("inf") else None
        try:
            response = await self._client.post(self.base_url + path, json=body, timeout=remaining)
        except httpx.TimeoutException:
            raise APIError(504, "the generation server did not answer in time", "generation_timeout") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(502, f"the generation server at {self.base_url} cannot be reached "
                                     f"({type(exc).__name__})", "upstream_unavailable") from None
        if response.status_code != 200:
            raise _upstream_status_error(response)
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if request.kind == "chat" else choice["text"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise UpstreamError(502, "the generation server sent a response that is not an OpenAI "
                                     "completion", "upstream_invalid_response") from None
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return GenerationResult(text or "", finish, int(usage.get("prompt_tokens") or 0),
                                int(usage.get("completion_tokens") or 0))


def _upstream_status_error(response: httpx.Response) -> UpstreamError:
    try:
        detail = str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        detail = "no error message"
    if response.status_code in (400, 413, 422):
        return UpstreamError(400, f"the generation server refused the request: {detail}", "upstream_bad_request")
    if response.status_code in (401, 403):
        return UpstreamError(502, "the generation server refused this server's credentials; set its key in "
                                  "the variable named by serve.remote.api_key_env", "upstream_unauthorized")
    return UpstreamError(502, f"the generation server failed with HTTP {response.status_code}: {detail}",
                         "upstream_error")


def _first_model(base_url: str, headers: Mapping[str, str], key_variable: str | None) -> str:
    try:
        response = httpx.get(f"{base_url}/models", headers=dict(headers), timeout=10.0)
    except httpx.HTTPError as exc:
        raise ClinicalRLHFError(f"cannot reach the generation server at {base_url} ({type(exc).__name__}); "
                                f"start it, fix serve.remote.base_url, or set serve.remote.model") from None
    if response.status_code in (401, 403):
        raise ClinicalRLHFError(f"the generation server at {base_url} refused our key; put it in "
                                f"${key_variable or 'CLINICAL_RLHF_UPSTREAM_API_KEY'}")
    try:
        return str(response.json()["data"][0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ClinicalRLHFError(f"{base_url}/models (HTTP {response.status_code}) lists no model; "
                                f"set serve.remote.model") from None
