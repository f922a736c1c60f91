"""Servers on loopback for the serving tests: a scripted tiny model behind the real app."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from clinical_rlhf.config import Config
from clinical_rlhf.models.tiny import tiny_model_config
from clinical_rlhf.serve import create_app, hash_key, new_api_key, running_server, serve_forever

from .scripted import build_scripted_model

MODEL = "clinical-demo"
BUSY_GUARD_LIMIT = 30.0
"""`serve.guard_timeout_seconds` for the tests that send 16 requests at once from this process
(load, parallel feedback). Each check takes ~1 ms in its worker, but with this process generating
on the CPU and running the clients too, the server's threads took 0.2-1.2 s to hand each check
to a worker and read its verdict back (2-core machine): checks queued past the default 5 s and
answers failed safe. Those tests are about errors and lost records under concurrency;
`test_guard_pool.py` and `test_hostile_input.py` test the limit itself."""


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The CPU is shared: one intra-op thread keeps a tiny model's generation fast and polite."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def scripted_model_dir(tmp_path_factory) -> Path:
    return build_scripted_model(tmp_path_factory.mktemp("scripted-model"))


@pytest.fixture(scope="session")
def api_key() -> str:
    return new_api_key()


@pytest.fixture(scope="session")
def make_cfg(scripted_model_dir, api_key, tmp_path_factory) -> Callable[..., Config]:
    """`make_cfg(serve={...}, safety={...})`: the scripted model on CPU, key `ward-7` = `api_key`,
    runs (and the audit log) under a fresh temporary directory."""

    def make(**sections: dict) -> Config:
        serve = {"api_keys": [{"id": "ward-7", "sha256": hash_key(api_key)}], **sections.pop("serve", {})}
        runs = tmp_path_factory.mktemp("runs")
        return tiny_model_config(scripted_model_dir, serve=serve, training={"runs_dir": str(runs)}, **sections)

    return make


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/ready", timeout=5.0)
        if response.status_code == 200:
            return
        assert response.json()["status"] == "loading", response.text
        time.sleep(0.05)
    raise AssertionError(f"{url} was not ready within {timeout} s")


@contextlib.contextmanager
def serving(cfg: Config, **app_kwargs) -> Iterator[str]:
    """The app for `cfg` on a free loopback port, ready; yields its root URL."""
    app = create_app(cfg, environ=app_kwargs.pop("environ", {}), **app_kwargs)
    with running_server(app) as server:
        wait_ready(server.url)
        yield server.url


def serve_in_foreground(app, watchdog_seconds: float = 60.0) -> None:
    """`serve_forever` on a free port, for apps that must stop on their own (a failed startup).
    Should one keep running, the watchdog sends SIGTERM, which stops it gracefully, and the
    test then fails on what it expected instead of hanging."""
    watchdog = threading.Timer(watchdog_seconds, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        serve_forever(app, "127.0.0.1", 0, shutdown_timeout=5)
    finally:
        watchdog.cancel()


def audit_path(cfg: Config) -> Path:
    return cfg.serve.audit_file or cfg.run_dir / "serve_audit.jsonl"
