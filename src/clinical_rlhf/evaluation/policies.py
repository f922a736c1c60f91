"""The policies an evaluation compares: a training checkpoint, or the reference (the base model
with the adapter disabled, i.e. the model before training).

    --checkpoint runs/demo/checkpoints/iter-000040   that checkpoint (verified, never swapped for another)
    --checkpoint runs/demo                           the run's newest good checkpoint
    --checkpoint auto                                the newest good checkpoint of the config's run
    --baseline reference                             the base policy

Both policies live in one model: a checkpoint's trainable weights are loaded into the bundle
before it answers, the reference is the bundle inside `bundle.reference()`. A checkpoint
trained on another model, or on other base weights under the same name (a rebuilt demo model,
a re-downloaded Hub model), is refused with a `CheckpointError`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from clinical_rlhf.errors import CheckpointError
from clinical_rlhf.models.fingerprint import base_model_fingerprint
from clinical_rlhf.rl.checkpoint import (
    CheckpointInfo,
    CheckpointPayload,
    has_unreadable_manifest,
    load_checkpoint,
    read_info,
)

log = logging.getLogger(__name__)

REFERENCE = "reference"


@dataclass
class Policy:
    """One side of the comparison."""

    name: str
    """The checkpoint's directory name, or `reference`."""
    info: CheckpointInfo | None = None
    payload: CheckpointPayload | None = None

    @property
    def is_reference(self) -> bool:
        return self.info is None

    @property
    def run_dir(self) -> Path | None:
        """The run a checkpoint belongs to (`<run>/checkpoints/<name>`), if it sits in one."""
        if self.info is None or self.info.path.parent.name != "checkpoints":
            return None
        return self.info.path.parent.parent

    def describe(self) -> dict[str, object]:
        if self.info is None:
            return {"name": REFERENCE, "kind": "reference", "path": None, "iteration": 0}
        return {"name": self.name, "kind": self.info.kind, "path": str(self.info.path),
                "iteration": self.info.iteration, "metrics": dict(self.info.metrics)}


def _checkpoints_in(directory: Path) -> list[CheckpointInfo]:
    """Checkpoints with a readable manifest, oldest first. Read-only: unlike `CheckpointManager`
    it creates and removes nothing, so a run that is still training is left alone."""
    if not directory.is_dir():
        return []
    found = [info for info in (read_info(path) for path in sorted(directory.iterdir()) if path.is_dir()) if info]
    return sorted(found, key=lambda info: (info.iteration, info.kind == "emergency_stop"))


def resolve_policy(spec: str, run_dir: Path, option: str = "--checkpoint") -> Policy:
    """A checkpoint directory, a run directory (its newest good checkpoint), `auto` (the newest
    good checkpoint of `run_dir`) or `reference`. A checkpoint named explicitly must verify; a
    newest-good search skips corrupt and emergency-stop checkpoints with a warning."""
    if spec == REFERENCE:
        return Policy(REFERENCE)
    if spec == "auto":
        directory = Path(run_dir) / "checkpoints"
    else:
        path = Path(spec)
        if not path.is_dir():
            raise CheckpointError(f"{option} {spec}: no such directory; pass a checkpoint directory (holding "
                                  f"manifest.json), a run directory, `auto` or `reference`")
        info = read_info(path)
        if info is not None:
            return Policy(info.name, info, load_checkpoint(path))
        if has_unreadable_manifest(path):
            raise CheckpointError(f"{option} {spec}: its manifest.json is unreadable (corrupt); pass another "
                                  f"checkpoint, or its run directory for the newest good one")
        if path.name == "checkpoints" and path.parent.exists():
            directory = path
        else:
            directory = path / "checkpoints"
    candidates = [info for info in reversed(_checkpoints_in(directory)) if info.kind != "emergency_stop"]
    if not candidates:
        raise CheckpointError(f"{option} {spec}: no checkpoint in {directory}; train first (`clinical-rlhf train`) "
                              f"or pass a checkpoint directory such as runs/<name>/checkpoints/iter-000040")
    problems = []
    for info in candidates:
        try:
            return Policy(info.name, info, load_checkpoint(info.path))
        except CheckpointError as exc:
            problems.append(str(exc))
            log.warning("%s; trying the previous checkpoint", exc)
    raise CheckpointError(f"{option} {spec}: no valid checkpoint in {directory} ({'; '.join(problems)})")


def check_compatible(policy: Policy, cfg, fingerprint: str) -> None:
    """Refuse a checkpoint trained on another model name or on other base weights."""
    if policy.payload is None:
        return
    path = policy.info.path
    trained_cfg = yaml.safe_load(policy.payload.config_yaml) or {}
    trained_on = (trained_cfg.get("model") or {}).get("name")
    if trained_on and trained_on != cfg.model.name:
        raise CheckpointError(f"checkpoint {path} was trained on model `{trained_on}`, but the config evaluates "
                              f"`{cfg.model.name}`; evaluate it with the config it was trained with "
                              f"({path / 'config.yaml'})")
    saved = policy.payload.state.get("base_fingerprint")
    if saved is not None and saved != fingerprint:
        raise CheckpointError(f"checkpoint {path} was trained on different base-model weights than the model "
                              f"loaded now ({cfg.model.path or cfg.model.name}); evaluate it with the base model it "
                              f"was trained on (a rebuilt demo model has new weights: retrain, or restore the old one)")


class PolicySwitch:
    """Puts the one bundle into the state of a policy: `with switch.active(policy): ...`."""

    def __init__(self, bundle) -> None:
        self.bundle = bundle
        self.fingerprint = base_model_fingerprint(bundle.model)
        self._initial = bundle.trainable_state_dict()

    @contextlib.contextmanager
    def active(self, policy: Policy) -> Iterator[object]:
        if policy.is_reference:
            with self.bundle.reference():
                yield self.bundle
            return
        self.bundle.load_trainable_state_dict(policy.payload.trainable)
        try:
            yield self.bundle
        finally:
            self.bundle.load_trainable_state_dict(self._initial)
