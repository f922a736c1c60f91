"""Fixtures of the monitoring tests: configs pointing into tmp_path and a pre-built MLflow store.

Creating an MLflow SQLite store runs its schema migrations (1-5 s); tests copy one migrated
empty store to where the default URI points (`<runs_dir>/mlflow.db`, shared by the runs there)
instead, which opens in milliseconds. The tracker does not know.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from clinical_rlhf.config import Config, load_config


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory) -> Path:
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def make_cfg(tmp_path, mlflow_template_db) -> Callable[..., Config]:
    """`make_cfg("name", "monitoring.tracking.enabled=false", ...)` -> a Config whose run dir is
    `tmp_path/runs/name`, next to a copy of the migrated MLflow store in `tmp_path/runs`."""

    def build(run_name: str = "run", *overrides: str) -> Config:
        cfg = load_config(None, [f"training.runs_dir={tmp_path / 'runs'}", f"training.run_name={run_name}",
                                 "monitoring.tracking.retry_seconds=0", *overrides])
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        store = cfg.training.runs_dir / "mlflow.db"
        if cfg.monitoring.tracking.uri is None and not store.exists():
            shutil.copy(mlflow_template_db, store)
        return cfg

    return build
