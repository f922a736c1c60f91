"""Fixtures of the monitoring tests: configs pointing into tmp_path and a pre-built MLflow store.

Creating an MLflow SQLite store runs its schema migrations (1-5 s); tests copy one migrated
empty store into their run directory instead, which opens in milliseconds. The tracker does
not know: it finds `mlflow.db` where the default URI points.
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
    `tmp_path/runs/name`, holding a copy of the migrated MLflow store."""

    def build(run_name: str = "run", *overrides: str) -> Config:
        cfg = load_config(None, [f"training.runs_dir={tmp_path / 'runs'}", f"training.run_name={run_name}",
                                 "monitoring.tracking.retry_seconds=0", *overrides])
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.monitoring.tracking.uri is None:
            shutil.copy(mlflow_template_db, cfg.run_dir / "mlflow.db")
        return cfg

    return build
