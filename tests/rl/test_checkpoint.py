"""Checkpoint I/O: atomic writes, checksums, fallback to the previous good one, retention, RNG."""

import logging
import os
import random

import numpy as np
import pytest
import torch

from clinical_rlhf.errors import CheckpointError
from clinical_rlhf.rl import checkpoint as ck


def _payload(scale: float = 1.0) -> ck.CheckpointPayload:
    return ck.CheckpointPayload(
        trainable={"lora.weight": torch.full((2, 3), scale), "value_head.weight": torch.ones(1, 3)},
        optimizer={"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]},
        state={"iteration": int(scale), "kl": {"value": 0.05}, "rng": ck.capture_rng_state()},
        config_yaml="training:\n  seed: 1\n",
    )


def test_save_load_round_trip(tmp_path):
    manager = ck.CheckpointManager(tmp_path, keep_last=2)
    info = manager.save(3, "regular", _payload(3.0), {"unsafe_ratio": 0.2, "reward": 0.5})
    assert info.path.name == "iter-000003"
    loaded = ck.load_checkpoint(info.path)
    assert torch.equal(loaded.trainable["lora.weight"], torch.full((2, 3), 3.0))
    assert loaded.optimizer["param_groups"][0]["lr"] == 1e-3
    assert loaded.state["kl"] == {"value": 0.05}
    assert loaded.config_yaml.startswith("training:")
    assert not list(tmp_path.glob(".tmp-*"))


def test_interrupted_save_leaves_no_checkpoint_and_is_cleaned_up(tmp_path, monkeypatch):
    manager = ck.CheckpointManager(tmp_path, keep_last=2)

    def crash(*_args):
        raise OSError("power cut")

    monkeypatch.setattr(ck.os, "replace", crash)
    with pytest.raises(OSError):
        manager.save(1, "regular", _payload(), {"unsafe_ratio": 0.1})
    assert manager.list() == []  # the half-written directory is not a checkpoint
    assert list(tmp_path.glob(".tmp-*"))
    monkeypatch.setattr(ck.os, "replace", os.replace)
    ck.CheckpointManager(tmp_path, keep_last=2)  # a new manager removes the leftovers
    assert not list(tmp_path.glob(".tmp-*"))


def test_corrupt_checkpoint_falls_back_to_previous_good_with_warning(tmp_path, caplog):
    manager = ck.CheckpointManager(tmp_path, keep_last=5)
    manager.save(1, "regular", _payload(1.0), {"unsafe_ratio": 0.3})
    newest = manager.save(2, "regular", _payload(2.0), {"unsafe_ratio": 0.2})
    weights = newest.path / "trainable.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the adapter weights
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        ck.load_checkpoint(newest.path)
    with caplog.at_level(logging.WARNING):
        info, payload = manager.latest_resumable()
    assert info.iteration == 1 and payload.state["iteration"] == 1
    assert "corrupt" in caplog.text and "falling back" in caplog.text
    # an explicit path to the corrupt one falls back the same way
    info, _ = ck.resolve_resume(newest.path, manager)
    assert info.iteration == 1


def test_no_valid_checkpoint_is_one_clear_error(tmp_path):
    manager = ck.CheckpointManager(tmp_path, keep_last=2)
    with pytest.raises(CheckpointError, match="no valid checkpoint"):
        manager.latest_resumable()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ck.resolve_resume(tmp_path / "missing", manager)


def test_retention_keeps_last_n_best_and_emergency(tmp_path):
    manager = ck.CheckpointManager(tmp_path, keep_last=2)
    unsafe = {1: 0.4, 2: 0.05, 3: 0.3, 4: 0.2, 5: 0.25}
    for iteration, ratio in unsafe.items():
        manager.save(iteration, "regular", _payload(float(iteration)), {"unsafe_ratio": ratio})
        manager.prune()
    manager.save(6, "emergency_stop", _payload(6.0), {"unsafe_ratio": 0.9})
    manager.prune()
    names = [info.name for info in manager.list()]
    assert names == ["iter-000002", "iter-000004", "iter-000005", "emergency_stop-000006"]
    assert manager.best().iteration == 2
    info, _ = manager.latest_resumable()
    assert info.iteration == 5  # auto-resume never picks an emergency-stop checkpoint


def test_rng_state_round_trip_through_a_checkpoint(tmp_path):
    manager = ck.CheckpointManager(tmp_path, keep_last=1)
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    info = manager.save(1, "regular", _payload(), {"unsafe_ratio": 0.0})
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    ck.restore_rng_state(ck.load_checkpoint(info.path).state["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_a_garbage_manifest_is_warned_about_once_and_skipped(tmp_path, caplog):
    manager = ck.CheckpointManager(tmp_path, keep_last=5)
    manager.save(1, "regular", _payload(1.0))
    newest = manager.save(2, "regular", _payload(2.0))
    (newest.path / "manifest.json").write_bytes(b"\x00garbage{")
    with caplog.at_level(logging.WARNING):
        info, _ = manager.latest_resumable()
        manager.list()  # listed again: no second warning
    assert info.iteration == 1
    warnings = [r.getMessage() for r in caplog.records if "manifest.json is unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "iter-000002" in warnings[0] and "skipping" in warnings[0]


def test_the_manifest_carries_the_audit_anchor(tmp_path):
    from clinical_rlhf.monitoring.runfiles import audit_anchor_of
    from clinical_rlhf.safety import AuditLog
    from clinical_rlhf.safety.audit_anchor import anchor_from_checkpoint

    with AuditLog(tmp_path / "audit.jsonl") as audit:
        audit.record("run_start", "run-1")
        anchor = audit.anchor()
    manager = ck.CheckpointManager(tmp_path / "checkpoints", keep_last=5)
    info = manager.save(3, "regular", _payload(), audit_anchor=anchor.to_dict())
    assert audit_anchor_of(info.path) == {"count": 1, "head_hash": anchor.head_hash}
    assert anchor_from_checkpoint(info.path) == anchor == anchor_from_checkpoint(tmp_path)  # run dir: newest
    assert ck.verify_checkpoint(info.path)["audit"]["count"] == 1


@pytest.mark.parametrize("garbage", [b"\x00garbage{", b"[1, 2]", b'{"iteration": 2, "kind": "regular", "sha256": 5}'])
def test_a_named_checkpoint_with_a_garbage_manifest_is_one_clear_error_or_a_fallback(tmp_path, caplog, garbage):
    from clinical_rlhf.evaluation.policies import resolve_policy

    run_dir = tmp_path / "run"
    manager = ck.CheckpointManager(run_dir / "checkpoints", keep_last=5)
    manager.save(1, "regular", _payload(1.0))
    newest = manager.save(2, "regular", _payload(2.0))
    (newest.path / "manifest.json").write_bytes(garbage)
    with pytest.raises(CheckpointError, match="no readable manifest.json"):
        ck.verify_checkpoint(newest.path)
    if garbage.startswith(b"{"):  # readable enough to list, only its checksums are garbage
        return
    with pytest.raises(CheckpointError, match="--checkpoint .*iter-000002: its manifest.json is unreadable"):
        resolve_policy(str(newest.path), run_dir)
    assert resolve_policy(str(run_dir), run_dir).name == "iter-000001"  # a run directory: the newest good one
    with caplog.at_level(logging.WARNING):
        info, _ = ck.resolve_resume(newest.path, manager)  # --resume PATH: the previous good one, as for bad weights
    assert info.iteration == 1
    odd = run_dir / "checkpoints" / "my-copy"
    odd.mkdir()
    (odd / "manifest.json").write_bytes(garbage)
    with pytest.raises(CheckpointError, match="my-copy: its manifest.json is unreadable"):
        ck.resolve_resume(odd, manager)


def test_a_run_directory_anchors_with_its_newest_anchored_checkpoint_and_warns_about_garbage(tmp_path, caplog):
    from clinical_rlhf.errors import InputDataError
    from clinical_rlhf.safety.audit import AuditAnchor
    from clinical_rlhf.safety.audit_anchor import anchor_from_checkpoint

    manager = ck.CheckpointManager(tmp_path / "checkpoints", keep_last=5)
    with pytest.raises(InputDataError, match="no checkpoint manifest with an audit anchor"):
        manager.save(1, "regular", _payload())  # written without an audit log: no anchor
        anchor_from_checkpoint(tmp_path)
    manager.save(2, "regular", _payload(), audit_anchor={"count": 4, "head_hash": "a" * 64})
    manager.save(3, "regular", _payload())  # newer, but not anchored
    garbage = manager.save(4, "regular", _payload())
    (garbage.path / "manifest.json").write_bytes(b"\x00")
    with caplog.at_level(logging.WARNING):
        assert anchor_from_checkpoint(tmp_path) == AuditAnchor(4, "a" * 64)
    assert "iter-000004: manifest.json is unreadable (corrupt); skipping" in caplog.text
