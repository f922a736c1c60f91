"""`clinical-rlhf serve --config FILE [--checkpoint PATH] [--host H] [--port N]` and
`clinical-rlhf serve-key --id NAME`: wiring only (the server is `clinical_rlhf.serve`).

The checkpoint is read here, at the CLI level, because checkpoints belong to `rl/` and `serve/`
does not import it (DESIGN.md: cli -> {rl, serve}).
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.config import ServeApiKeyConfig
from clinical_rlhf.errors import CheckpointError, ConfigError

# `clinical_rlhf.serve` needs the `serve` extra (fastapi, uvicorn, httpx) and checkpoints load torch:
# both are imported inside the commands, so that `--help` and the other commands run without them.

logger = logging.getLogger("clinical_rlhf.serve")

CheckpointOption = Annotated[
    Optional[Path],
    typer.Option("--checkpoint", help="Training checkpoint directory whose adapter is served "
                                      "(default: serve.checkpoint; none serves the base model)."),
]
HostOption = Annotated[Optional[str], typer.Option("--host", help="Bind address (default: serve.host, 127.0.0.1).")]
PortOption = Annotated[Optional[int], typer.Option("--port", min=0, max=65535,
                                                   help="Port (default: serve.port, 8000; 0 picks a free one).")]


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(config: ConfigOption = DEFAULT_CONFIG, overrides: OverrideOption = None,
              checkpoint: CheckpointOption = None, host: HostOption = None, port: PortOption = None) -> None:
        """Serve the model behind the safety guard: OpenAI-compatible API, API keys, audit, batching."""
        cfg = with_options(load(config, overrides), checkpoint, host, port)
        run_server(cfg)

    @app.command("serve-key")
    def serve_key(key_id: Annotated[str, typer.Option("--id", help="Name of the client, e.g. ward-7.")]) -> None:
        """Create an API key: prints the key once, and the hash that goes into the config."""
        from clinical_rlhf.serve.auth import hash_key, new_api_key

        key = new_api_key()
        try:
            ServeApiKeyConfig(id=key_id, sha256=hash_key(key))
        except ValueError:
            raise ConfigError(f"--id {key_id!r}: use 1-64 letters, digits, '.', '_' or '-', starting with "
                              f"a letter or digit") from None
        typer.echo(f"API key for `{key_id}` (shown once; give it to the client, keep it out of files):\n\n"
                   f"  {key}\n\nAdd to the config:\n\nserve:\n  api_keys:\n    - id: {key_id}\n"
                   f"      sha256: {hash_key(key)}\n\nor pass it in the environment: "
                   f"CLINICAL_RLHF_API_KEYS={key_id}:<key>")


def with_options(cfg, checkpoint: Path | None, host: str | None, port: int | None):
    """The config with the command-line options in place of their `serve.*` keys."""
    changes = {name: value for name, value in (("checkpoint", checkpoint), ("host", host), ("port", port))
               if value is not None}
    return cfg.model_copy(update={"serve": cfg.serve.model_copy(update=changes)}) if changes else cfg


def adapter_weights(cfg, path: Path) -> dict:
    """The trained adapter (and value head) of a checkpoint directory, verified against its
    checksums, after checking that it was trained on the model this config serves."""
    from clinical_rlhf.rl.checkpoint import load_checkpoint

    payload = load_checkpoint(Path(path))
    trained_on = ((yaml.safe_load(payload.config_yaml) or {}).get("model") or {}).get("name")
    if trained_on and trained_on != cfg.model.name:
        raise CheckpointError(f"checkpoint {path} was trained on model `{trained_on}`, but the config serves "
                              f"`{cfg.model.name}`; serve it with the config it was trained with "
                              f"({Path(path) / 'config.yaml'})")
    return payload.trainable


def backend_loader(cfg):
    """What the server calls (in a thread, after it starts listening) to load the model."""
    from clinical_rlhf.serve import build_backend

    def load_backend():
        weights = adapter_weights(cfg, cfg.serve.checkpoint) if cfg.serve.checkpoint is not None else None
        return build_backend(cfg, weights)

    return load_backend


def run_server(cfg) -> None:
    from clinical_rlhf.serve import create_app, serve_forever

    _show_logs()
    serve = cfg.serve
    if serve.backend == "openai_compatible" and serve.checkpoint is not None:
        raise ConfigError("--checkpoint loads an adapter into the local model; with serve.backend "
                          "openai_compatible load it into the upstream server instead")
    app = create_app(cfg, backend_loader(cfg))
    if serve.backend == "local" and serve.checkpoint is None:
        logger.warning("no --checkpoint: serving %s without a trained adapter", cfg.model.name)
    if not _is_loopback(serve.host):
        logger.warning("listening on %s: reachable from other machines; put a TLS proxy in front", serve.host)
    serve_forever(app, serve.host, serve.port, serve.shutdown_timeout_seconds)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _show_logs() -> None:
    """Server logs to stderr, one line each (they never hold a prompt, an answer or a key)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("clinical_rlhf", "uvicorn"):
        named = logging.getLogger(name)
        named.addHandler(handler)
        named.setLevel(logging.INFO)
        named.propagate = False
