"""Generation backends: the local model, or an OpenAI-compatible server (vLLM, TGI)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from clinical_rlhf.errors import ConfigError
from clinical_rlhf.serve.backends.base import (
    Backend, GenerationRequest, GenerationResult, Message, PromptTooLong, UpstreamError,
)
from clinical_rlhf.serve.backends.remote import RemoteBackend

if TYPE_CHECKING:
    from clinical_rlhf.config import Config


def build_backend(cfg: Config, trainable_state: Mapping | None = None,
                  environ: Mapping[str, str] | None = None) -> Backend:
    """The backend `serve.backend` names. `trainable_state`: a checkpoint's adapter weights
    (`bundle.trainable_state_dict()` format) for the local model; `environ` (default `os.environ`)
    holds the upstream's key for a remote one. Blocking: loading a model may take minutes."""
    if cfg.serve.backend == "openai_compatible":
        if trainable_state is not None:
            raise ConfigError("a checkpoint is loaded into the local model only; with serve.backend "
                              "openai_compatible load the adapter into the upstream server instead")
        return RemoteBackend.connect(cfg.serve, environ)
    from clinical_rlhf.serve.backends.local import LocalBackend  # torch: only a local model needs it

    return LocalBackend.from_config(cfg, trainable_state)


__all__ = ["Backend", "GenerationRequest", "GenerationResult", "Message", "PromptTooLong", "UpstreamError",
           "build_backend"]
