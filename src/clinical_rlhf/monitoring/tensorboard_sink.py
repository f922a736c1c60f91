"""TensorBoard as a second tracker (`monitoring.report_to: [..., tensorboard]`): every logged
step's scalars through torch's own `SummaryWriter` into `<run dir>/tensorboard/`, read with
`tensorboard --logdir runs/` (one line per run, so runs compare there too).

torch is imported here, not at the top of `monitoring/`, because the rest of the package runs
without it; `tensorboard` itself is the optional extra `tensorboard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clinical_rlhf.errors import ConfigError

TENSORBOARD_DIR = "tensorboard"


class TensorBoardSink:
    """Scalars per step; opened lazily so a run without `tensorboard` in `report_to` never imports it."""

    def __init__(self, run_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("monitoring.report_to lists `tensorboard`, but the `tensorboard` package is not "
                              "installed; run `pip install 'clinical-rlhf[tensorboard]'` or remove it from "
                              "report_to") from None
        self.directory = Path(run_dir) / TENSORBOARD_DIR
        self._writer: Any = SummaryWriter(log_dir=str(self.directory))

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, global_step=step)

    def log_text(self, tag: str, text: str) -> None:
        """Markdown text (the resolved config), shown in TensorBoard's Text tab."""
        self._writer.add_text(tag, f"```\n{text}\n```", global_step=0)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
