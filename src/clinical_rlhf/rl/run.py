"""The run lifecycle PPO and DPO share: start or resume, evaluate before, loop, stop cleanly on a
signal, save, evaluate after, and audit each of those moments.

    train(resume)
      resume (checkpoint checks: algorithm, base-model fingerprint) | refuse to overwrite a run
      eval mode -> `_prepare` -> held-out evaluation "before" -> audit run_start -> log params
      while progress < total:  `_advance()` one iteration / step;  a stop signal -> save, audit, return
      an EmergencyStop -> audit run_end, re-raise
      `_save_final` -> held-out evaluation "after" -> audit run_end -> TrainResult

`PPOTrainer` (rl/trainer.py) and `DPOTrainer` (rl/dpo.py) fill in the hooks; each keeps its own
maths, its own step and its own checkpoint contents.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from clinical_rlhf.errors import CheckpointError, EmergencyStop
from clinical_rlhf.rl.checkpoint import CheckpointInfo, CheckpointPayload, require_algorithm, require_new_run, resolve_resume

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    status: str
    """`completed` or `interrupted` (an emergency stop raises `EmergencyStop` instead)."""
    iterations_done: int
    message: str
    last_checkpoint: Path | None = None
    before: dict | None = None
    after: dict | None = None
    history: list[dict[str, float]] = field(default_factory=list)


class TrainingRun:
    """What a training run does around its steps. A subclass sets `algorithm` and `unit`, the
    attributes `cfg`, `bundle`, `tracker`, `audit`, `run_dir`, `run_id`, `checkpoints`,
    `signals`, `base_fingerprint`, `history`, `last_checkpoint`, and implements the hooks."""

    algorithm: str
    """Written into every checkpoint; a resume refuses another algorithm's."""
    unit: str
    """What one `_advance()` is called in messages: iteration (PPO) or step (DPO)."""

    # ------------------------------------------------------------------ hooks

    @property
    def progress(self) -> int:
        """Iterations or steps done."""
        raise NotImplementedError

    @property
    def total(self) -> int:
        """Iterations or steps the run is configured for."""
        raise NotImplementedError

    def _advance(self) -> bool:
        """One iteration or step; False when a stop signal abandoned it before it changed anything."""
        raise NotImplementedError

    def _restore(self, info: CheckpointInfo, payload: CheckpointPayload) -> None:
        """Load the algorithm's own state from a checkpoint already checked by `_resume`."""
        raise NotImplementedError

    def _save(self, kind: str):
        raise NotImplementedError

    def _evaluation(self, which: str, reuse: bool = False) -> dict | None:
        raise NotImplementedError

    def _prepare(self, resumed: bool) -> None:
        """Work between loading and the first evaluation (DPO: the reference log-probs)."""

    def _run_details(self) -> dict:
        """Extra fields of the run_start audit record."""
        return {}

    def _started(self, before: dict | None, resumed: bool) -> None:
        """After the run_start record and the parameters are logged."""

    def _save_final(self) -> None:
        self._save("regular")

    def _completed_message(self) -> str:
        return f"training completed after {self.progress} {self.unit}s"

    def _stop_requested(self) -> bool:
        return self.signals.requested

    def _say(self, message: str) -> None:
        log.info(message)

    # ------------------------------------------------------------------ the lifecycle

    def train(self, resume: str | Path | None = None) -> TrainResult:
        """Run (or continue) training; returns after the last step, or after saving on SIGTERM/SIGINT.
        Raises `EmergencyStop` after saving and auditing."""
        with self.signals:
            resumed = resume is not None
            if resumed:
                self._resume(resume)
            else:
                require_new_run(self.run_dir)
            self.bundle.eval()  # no dropout: log-probs must not depend on when they are computed
            self._prepare(resumed)
            before = self._evaluation("before", reuse=resumed)
            config_sha256 = hashlib.sha256(self.cfg.to_yaml().encode()).hexdigest()
            self._audit("run_start", details={"iteration": self.progress, "resumed": resumed,
                                              "config_sha256": config_sha256} | self._run_details())
            self.tracker.log_params(self.cfg)
            self._started(before, resumed)
            try:
                while self.progress < self.total:
                    if not self._advance() or self._stop_requested():
                        return self._interrupted(before)
            except EmergencyStop as stop:
                self._audit("run_end", details={"status": "emergency_stop", "iteration": self.progress,
                                                "message": str(stop)})
                raise
            self._save_final()
            after = self._evaluation("after")
            self._audit("run_end", details={"status": "completed", "iteration": self.progress})
            return TrainResult("completed", self.progress, self._completed_message(), self.last_checkpoint,
                               before, after, self.history)

    def _resume(self, resume: str | Path) -> None:
        """`--resume auto|PATH`: the checkpoint must be this algorithm's, on the same base weights."""
        if str(resume) == "auto" and not self.checkpoints.list():
            self._say(f"--resume auto: no checkpoint in {self.checkpoints.directory}, starting a new run")
            return
        info, payload = resolve_resume(resume, self.checkpoints)
        require_algorithm(info.path, payload.state, self.algorithm)
        if payload.state["base_fingerprint"] != self.base_fingerprint:
            raise CheckpointError(f"checkpoint {info.path} was trained on different base-model weights than the "
                                  f"model loaded now ({self.cfg.model.path or self.cfg.model.name}); resume with the "
                                  f"base model it was trained on, or start a new run")
        self._restore(info, payload)

    def _interrupted(self, before: dict | None) -> TrainResult:
        info = self._save("interrupt")
        message = (f"stopped by {self.signals.name} after {self.unit} {self.progress}; checkpoint saved to "
                   f"{info.path}; continue with --resume auto")
        self._audit("run_end", details={"status": "interrupted", "iteration": self.progress,
                                        "signal": self.signals.name})
        self.tracker.log_event(self.progress, "interrupted", "info", message)
        return TrainResult("interrupted", self.progress, message, info.path, before, None, self.history)

    def _audit(self, event: str, **fields) -> None:
        if self.audit is not None:
            self.audit.record(event, self.run_id, **fields)
