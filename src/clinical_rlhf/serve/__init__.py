"""Safety-gated serving: an OpenAI-compatible HTTP API with dynamic batching (docs/serving.md).

    from clinical_rlhf.serve import create_app, running_server
    app = create_app(cfg)                          # routes, API keys, limits, audit, metrics
    with running_server(app) as server:            # background thread; or `clinical-rlhf serve`
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=key)

Every answer passes `SafetyGuard` before it leaves: a question with red flags gets the emergency
advice first, a rejected answer is replaced by a fallback with a reason code, and both checks
are audit-logged with the API key's id. Needs the `serve` extra (fastapi, uvicorn, httpx).
"""

from clinical_rlhf.serve.app import create_app
from clinical_rlhf.serve.auth import hash_key, new_api_key
from clinical_rlhf.serve.backends import build_backend
from clinical_rlhf.serve.server import RunningServer, running_server, serve_forever

__all__ = ["RunningServer", "build_backend", "create_app", "hash_key", "new_api_key", "running_server",
           "serve_forever"]
