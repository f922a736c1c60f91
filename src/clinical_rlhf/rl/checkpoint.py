"""Atomic, checksummed checkpoints of a training run, and the RNG state they carry.

A checkpoint is a directory `<run dir>/checkpoints/<name>/` holding

    trainable.safetensors   adapter and value-head weights (`bundle.trainable_state_dict()`)
    optimizer.pt            optimizer state
    trainer_state.pt        scheduler, KL/Lagrange controllers, reward moments, RNG states
                            (one per process), counters and history (plain tensors, ints,
                            floats, lists, dicts)
    config.yaml             the resolved config of the run
    manifest.json           iteration, kind, metrics, the SHA-256 of every file above and the
                            audit log's anchor (`audit`: record count and head hash at the save)

It is complete or absent: written under a temporary name, every file and the directory
fsynced, then renamed into place (a rename within one directory is atomic on POSIX). A
checkpoint whose files do not match the manifest's checksums is reported and skipped in favour
of the previous good one. `torch.load(weights_only=True)` is used throughout, so loading a
checkpoint never runs pickled code.

Under several processes only rank 0 writes (the others wait for it); the weights and the
optimizer are the same on every rank, so a checkpoint is loadable by any number of processes.
Under FSDP every rank first gathers the full tensors (`rl/sharding.py`), so the files are the
same as a one-process run's and resume with or without FSDP. Only the RNG streams are per
rank: see `restore_rank_rng_state`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from clinical_rlhf.durable import fsync_path, sha256_file
from clinical_rlhf.errors import CheckpointError
from clinical_rlhf.rl.distributed import derived_seed
from clinical_rlhf.seeding import seed_everything

log = logging.getLogger(__name__)

FILES = ("trainable.safetensors", "optimizer.pt", "trainer_state.pt", "config.yaml")
KINDS = ("regular", "interrupt", "emergency_stop")


# ----------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """Every RNG the run draws from: python, numpy, torch CPU (and CUDA when present)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


RESEED_STREAM = 2
"""Stream key of `derived_seed` for the RNG of a resume with another number of processes."""


def restore_rank_rng_state(state: dict[str, Any], *, rank: int, world_size: int, seed: int,
                           deterministic: bool = False) -> str:
    """Give this rank the RNG streams a resumed run continues with; returns what was done.

    Same number of processes as the checkpoint: rank r gets back exactly the streams rank r
    saved (`rng_per_rank`; a checkpoint from before that field is a one-process one and holds
    `rng`), so the resumed run repeats the uninterrupted one. Another number of processes:
    the saved streams sampled other shards, so reusing some of them would only look
    reproducible; every rank re-seeds with `derived_seed(seed, RESEED_STREAM, rank, iteration)`
    instead — deterministic for a given (seed, world size, iteration), not the original stream.
    Prompt order, mini-batch order and weights do not depend on these streams.
    """

    saved = state.get("rng_per_rank") or [state["rng"]]
    if len(saved) == world_size:
        restore_rng_state(saved[rank])
        return "restored"
    reseed = derived_seed(seed, RESEED_STREAM, rank, int(state["iteration"]))
    seed_everything(reseed, deterministic)
    return (f"re-seeded: the checkpoint was written by {len(saved)} process(es), this run has {world_size}, "
            f"so each rank's sampling RNG is derived from the seed, its rank and the iteration")


def require_algorithm(path: Path, state: dict, expected: str) -> None:
    """Refuse to resume a checkpoint written by another algorithm: a PPO checkpoint has a value
    head, KL and Lagrange controllers and a prompt cursor, a DPO one a pair cursor; neither is
    the other's state. (Warm-starting DPO from a PPO adapter would be a new run, not a resume.)
    Checkpoints written before `algorithm` was recorded are PPO's."""
    found = state.get("algorithm", "ppo")
    if found != expected:
        raise CheckpointError(f"checkpoint {path} was written by training.algorithm: {found}, this run is "
                              f"training.algorithm: {expected}; resume it with training.algorithm={found}, or "
                              f"start a new run with --set training.run_name=<new name>")


# ----------------------------------------------------------------------------- payload


@dataclass
class CheckpointPayload:
    """What the trainer saves and gets back."""

    trainable: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    state: dict[str, Any]
    config_yaml: str


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint on disk, as its manifest describes it."""

    path: Path
    iteration: int
    kind: str
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.name


def checkpoint_name(iteration: int, kind: str) -> str:
    prefix = "iter" if kind in ("regular", "interrupt") else kind
    return f"{prefix}-{iteration:06d}"


def _write_files(directory: Path, payload: CheckpointPayload) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in payload.trainable.items()},
              str(directory / "trainable.safetensors"))
    torch.save(payload.optimizer, directory / "optimizer.pt")
    torch.save(payload.state, directory / "trainer_state.pt")
    (directory / "config.yaml").write_text(payload.config_yaml, encoding="utf-8")


# ----------------------------------------------------------------------------- manager


class CheckpointManager:
    """Saves, lists, verifies, loads and prunes the checkpoints of one run directory.

    The last `keep_last` regular and interrupt checkpoints are kept, plus the best one (lowest
    unsafe ratio, then highest reward, from the manifest metrics) and every emergency-stop one.
    """

    def __init__(self, directory: Path, keep_last: int) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be at least 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(".tmp-*"):  # a save that died half-way
            shutil.rmtree(stale, ignore_errors=True)

    # -- writing

    def save(self, iteration: int, kind: str, payload: CheckpointPayload,
             metrics: dict[str, float] | None = None, audit_anchor: dict[str, Any] | None = None) -> CheckpointInfo:
        """Write atomically; an existing checkpoint of the same name is replaced. `audit_anchor`
        (`AuditAnchor.to_dict()`) goes into the manifest for `audit verify --against`."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        name = checkpoint_name(iteration, kind)
        final = self.directory / name
        temporary = self.directory / f".tmp-{name}-{os.getpid()}"
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        _write_files(temporary, payload)
        manifest = {
            "iteration": iteration, "kind": kind, "created": time.time(),
            "metrics": {k: float(v) for k, v in (metrics or {}).items()},
            "sha256": {file: sha256_file(temporary / file) for file in FILES},
        }
        if audit_anchor is not None:
            manifest["audit"] = audit_anchor
        (temporary / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        for file in (*FILES, "manifest.json"):
            fsync_path(temporary / file)
        fsync_path(temporary)
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
        fsync_path(self.directory)
        return CheckpointInfo(final, iteration, kind, manifest["metrics"])

    def prune(self) -> list[Path]:
        """Delete regular checkpoints beyond the last `keep_last`, never the best one."""
        regular = [info for info in self.list() if info.kind != "emergency_stop"]
        best = self.best()
        keep = {info.path for info in regular[-self.keep_last:]}
        if best is not None:
            keep.add(best.path)
        removed = [info.path for info in regular if info.path not in keep]
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        return removed

    # -- reading

    def list(self) -> list[CheckpointInfo]:
        """Checkpoints with a readable manifest, oldest first (checksums not verified here)."""
        found = []
        for path in sorted(self.directory.iterdir()):
            info = read_info(path)
            if info is not None:
                found.append(info)
        return sorted(found, key=lambda info: (info.iteration, info.kind == "emergency_stop"))

    def _ranked(self) -> list[CheckpointInfo]:
        """Scheduled (`regular`) checkpoints, best first: lowest `unsafe_ratio`, then highest
        `reward`, then newest. Interrupt checkpoints are left out so that stopping and resuming a
        run cannot change which checkpoint a later rollback restores."""
        scored = [i for i in self.list() if i.kind == "regular" and "unsafe_ratio" in i.metrics]
        return sorted(scored, key=lambda i: (i.metrics["unsafe_ratio"], -i.metrics.get("reward", 0.0), -i.iteration))

    def best(self) -> CheckpointInfo | None:
        """The best scheduled checkpoint (see `_ranked`), or None."""
        ranked = self._ranked()
        return ranked[0] if ranked else None

    def load_first_valid(self, candidates: list[CheckpointInfo]) -> tuple[CheckpointInfo, CheckpointPayload]:
        """Load the first candidate that verifies; warn about each corrupt one skipped."""
        problems = []
        for info in candidates:
            try:
                return info, load_checkpoint(info.path)
            except CheckpointError as exc:
                problems.append(str(exc))
                log.warning("%s; falling back to the previous good checkpoint", exc)
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise CheckpointError(f"no valid checkpoint in {self.directory}{detail}; start without --resume "
                              f"or point --resume at a good checkpoint directory")

    def latest_resumable(self) -> tuple[CheckpointInfo, CheckpointPayload]:
        """The newest verified non-emergency checkpoint (what `--resume auto` continues from)."""
        candidates = [info for info in reversed(self.list()) if info.kind != "emergency_stop"]
        return self.load_first_valid(candidates)

    def best_loadable(self) -> tuple[CheckpointInfo, CheckpointPayload]:
        """The best verified checkpoint (what a rollback restores), next-best if it is corrupt."""
        return self.load_first_valid(self._ranked())


_WARNED_MANIFESTS: set[Path] = set()
"""Corrupt manifests already warned about: a run lists its checkpoints every iteration."""


def read_info(path: Path) -> CheckpointInfo | None:
    """The manifest of a checkpoint directory, or None when it is not one. An unreadable
    manifest is a corrupt checkpoint: warned about (once per process) and skipped."""
    manifest_path = Path(path) / "manifest.json"
    if path.name.startswith(".tmp-") or not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        return CheckpointInfo(Path(path), int(manifest["iteration"]), str(manifest["kind"]),
                              dict(manifest.get("metrics", {})))
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        if manifest_path not in _WARNED_MANIFESTS:
            _WARNED_MANIFESTS.add(manifest_path)
            log.warning("checkpoint %s: manifest.json is unreadable (corrupt); skipping this checkpoint", path)
        return None


def has_unreadable_manifest(path: Path) -> bool:
    """Whether `path` holds a manifest.json that `read_info` cannot read: a corrupt checkpoint
    (named explicitly, it is an error rather than a directory to search)."""
    path = Path(path)
    return (path / "manifest.json").is_file() and not path.name.startswith(".tmp-") and read_info(path) is None


def verify_checkpoint(path: Path) -> dict[str, Any]:
    """Return the manifest after checking every file's SHA-256; raise CheckpointError if not."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        expected = manifest["sha256"]
        if not isinstance(expected, dict):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):  # TypeError: JSON of another shape ([], "x", ...)
        raise CheckpointError(f"checkpoint {path} has no readable manifest.json (missing or corrupt)") from None
    for file in FILES:
        target = path / file
        if not target.is_file():
            raise CheckpointError(f"checkpoint {path} is missing {file}")
        if sha256_file(target) != expected.get(file):
            raise CheckpointError(f"checkpoint {path}: {file} does not match its checksum (corrupt)")
    return manifest


def load_checkpoint(path: Path) -> CheckpointPayload:
    """Verify, then load a checkpoint directory written by `CheckpointManager.save`."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        return CheckpointPayload(
            trainable=load_file(str(path / "trainable.safetensors")),
            optimizer=torch.load(path / "optimizer.pt", weights_only=True),
            state=torch.load(path / "trainer_state.pt", weights_only=True),
            config_yaml=(path / "config.yaml").read_text(encoding="utf-8"),
        )
    except Exception as exc:  # a checksum-clean file that still fails is an incompatible one
        raise CheckpointError(f"checkpoint {path} cannot be loaded: {exc}") from None


def resolve_resume(resume: str | Path, manager: CheckpointManager) -> tuple[CheckpointInfo, CheckpointPayload]:
    """`--resume auto` -> the newest good checkpoint of this run; `--resume PATH` -> that
    checkpoint (or, if it is corrupt, the newest good one before it in its directory); a path to
    a directory of checkpoints -> its newest good one."""
    if str(resume) == "auto":
        return manager.latest_resumable()
    path = Path(resume)
    info = read_info(path)
    if info is None and has_unreadable_manifest(path):  # warned about by read_info; its name gives the iteration
        named = re.fullmatch(r"[a-z_]+-(\d+)", path.name)
        if named is None:
            raise CheckpointError(f"--resume {resume}: its manifest.json is unreadable (corrupt); pass an older "
                                  f"checkpoint, or --resume auto for the newest good one of this run")
        return manager.load_first_valid(_older_than(path, int(named.group(1))))
    if info is not None:
        return manager.load_first_valid([info, *_older_than(path, info.iteration)])
    if path.is_dir():
        nested = path / "checkpoints" if (path / "checkpoints").is_dir() else path
        return CheckpointManager(nested, 1).latest_resumable()
    raise CheckpointError(f"--resume {resume}: no such checkpoint directory; pass `auto` or a directory "
                          f"holding manifest.json")


def _older_than(path: Path, iteration: int) -> list[CheckpointInfo]:
    """The resumable checkpoints beside `path` from before `iteration`, newest first."""
    return [info for info in reversed(CheckpointManager(path.parent, 1).list())
            if info.iteration < iteration and info.kind != "emergency_stop"]


def require_new_run(run_dir: Path) -> None:
    """A run started without --resume must not mix with an earlier run's checkpoints (a rollback
    could restore them). Call before opening anything that writes into the run directory."""
    checkpoints = Path(run_dir) / "checkpoints"
    if checkpoints.is_dir() and CheckpointManager(checkpoints, 1).list():
        raise CheckpointError(
            f"{run_dir} already holds checkpoints of an earlier run; continue it with --resume auto, "
            f"or start afresh with --set training.run_name=<new name> (or delete {run_dir})")
