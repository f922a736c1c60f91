"""`clinical-rlhf serve` as an operator runs it: checkpoints, SIGTERM, key creation."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
import typer
from typer.testing import CliRunner

from clinical_rlhf.cli import serve_cmd
from clinical_rlhf.errors import CheckpointError, ClinicalRLHFError
from clinical_rlhf.safety import verify_audit_log
from clinical_rlhf.serve import create_app, hash_key

from .conftest import MODEL, audit_path, serve_in_foreground, serving, wait_ready
from .scripted import SORE_THROAT, SORE_THROAT_ANSWER

LAUNCH = "from clinical_rlhf.cli import main\nmain()"


def cli_app() -> typer.Typer:
    app = typer.Typer()
    serve_cmd.register(app)
    return app


def test_serve_key_prints_a_key_and_its_hash_for_the_config():
    result = CliRunner().invoke(cli_app(), ["serve-key", "--id", "ward-7"])
    assert result.exit_code == 0, result.output
    key = re.search(r"^  (crl-\S+)$", result.output, re.MULTILINE).group(1)
    assert f"sha256: {hash_key(key)}" in result.output


def save_checkpoint(cfg, directory, perturb_seed: int | None):
    """A checkpoint as the trainer writes it; its adapter perturbed so that it changes the answers."""
    import torch

    from clinical_rlhf.models import build_policy
    from clinical_rlhf.rl.checkpoint import CheckpointManager, CheckpointPayload

    bundle = build_policy(cfg)
    if perturb_seed is not None:
        generator = torch.Generator().manual_seed(perturb_seed)
        with torch.no_grad():
            for name, parameter in bundle.model.named_parameters():
                if "lora_B" in name:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    payload = CheckpointPayload(bundle.trainable_state_dict(), {}, {}, cfg.to_yaml())
    return bundle, CheckpointManager(directory, keep_last=1).save(1, "regular", payload).path


def test_checkpoint_adapter_is_what_the_server_generates_with(make_cfg, api_key, tmp_path):
    from clinical_rlhf.serve.backends import GenerationRequest, Message
    from clinical_rlhf.serve.backends.local import LocalBackend

    cfg = make_cfg()
    trained, checkpoint = save_checkpoint(cfg, tmp_path / "checkpoints", perturb_seed=3)
    request = GenerationRequest("chat", messages=(Message("user", SORE_THROAT),), max_tokens=24, temperature=0)
    expected = LocalBackend(trained, "reference").generate_now([request])[0].text
    assert expected != SORE_THROAT_ANSWER  # the adapter matters
    cfg = serve_cmd.with_options(cfg, checkpoint, None, None)
    with serving(cfg, load_backend=serve_cmd.backend_loader(cfg)) as url:
        body = {"model": MODEL, "messages": [{"role": "user", "content": SORE_THROAT}], "temperature": 0,
                "max_tokens": 24}
        answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30,
                            headers={"Authorization": f"Bearer {api_key}"}).json()
    assert answer["safety"]["action"] == "allow"
    assert answer["choices"][0]["message"]["content"] == expected


def test_checkpoint_of_another_model_or_a_corrupt_one_is_one_clear_error(make_cfg, tmp_path):
    cfg = make_cfg()
    _, checkpoint = save_checkpoint(cfg, tmp_path / "checkpoints", perturb_seed=None)
    payload_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"name": "biomistral-7b"})})
    with pytest.raises(CheckpointError, match="trained on model `clinical-demo`, but the config serves `biomistral-7b`"):
        serve_cmd.adapter_weights(payload_cfg, checkpoint)
    (checkpoint / "trainable.safetensors").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        serve_cmd.adapter_weights(cfg, checkpoint)
    cfg = serve_cmd.with_options(cfg, checkpoint, None, None)
    app = create_app(cfg, serve_cmd.backend_loader(cfg), environ={})
    with pytest.raises(CheckpointError, match="does not match its checksum"):  # the server stops with it
        serve_in_foreground(app)


def test_sigterm_finishes_in_flight_requests_then_exits_cleanly(make_cfg, api_key, tmp_path):
    cfg = make_cfg(serve={"api_keys": [], "port": 0, "batching": {"max_wait_ms": 1000}})
    config = tmp_path / "serve.yaml"
    config.write_text(cfg.to_yaml())
    environment = {**os.environ, "CLINICAL_RLHF_API_KEYS": f"ward-7:{api_key}", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, "serve", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True, env=environment)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    try:
        url = _listening_url(lines, process)
        wait_ready(url)
        outcome: dict = {}
        body = {"model": MODEL, "messages": [{"role": "user", "content": SORE_THROAT}], "temperature": 0,
                "max_tokens": 40}

        def in_flight():  # waits ~1 s in the batch window: still running when SIGTERM comes
            outcome["response"] = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30,
                                             headers={"Authorization": f"Bearer {api_key}"})

        request = threading.Thread(target=in_flight)
        request.start()
        time.sleep(0.4)
        process.send_signal(signal.SIGTERM)
        request.join(timeout=30)
        assert process.wait(timeout=30) == 0, "".join(lines)
    finally:
        if process.poll() is None:
            process.kill()
    response = outcome["response"]
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == SORE_THROAT_ANSWER
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=2)
    assert verify_audit_log(audit_path(cfg)).ok
    records = [json.loads(line) for line in audit_path(cfg).read_text().splitlines()]
    assert [r["details"]["stage"] for r in records] == ["prompt", "answer"]
    logs = "".join(lines)
    assert api_key not in logs and SORE_THROAT not in logs


def _listening_url(lines: list[str], process: subprocess.Popen, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"listening on (http://\S+)/v1", "".join(lines))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise AssertionError("the server exited:\n" + "".join(lines))
        time.sleep(0.05)
    raise AssertionError("the server did not start listening:\n" + "".join(lines))


def test_a_damaged_audit_log_stops_the_server_with_one_error(make_cfg):
    cfg = make_cfg()
    audit_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    audit_path(cfg).write_text("this line is not an audit record\n")
    with pytest.raises(ClinicalRLHFError, match="audit verify"):
        serve_in_foreground(create_app(cfg, environ={}))
