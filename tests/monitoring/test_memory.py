"""Memory monitor: real readings of this process, pressure states, micro-batch shrinking."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from clinical_rlhf.config import MemoryConfig
from clinical_rlhf.monitoring.memory import MemoryMonitor, MemoryReading, _cgroup_usage, read_memory

GIB = 1024**3


def reading(host: float, cuda: float | None = None) -> MemoryReading:
    extra = {}
    if cuda is not None:
        extra = {"cuda_allocated_bytes": int(cuda * 60 * GIB), "cuda_reserved_bytes": int(cuda * 70 * GIB),
                 "cuda_used_bytes": int(cuda * 80 * GIB), "cuda_total_bytes": 80 * GIB}
    return MemoryReading(rss_bytes=GIB, host_used_bytes=int(host * 64 * GIB), host_total_bytes=64 * GIB, **extra)


class Probe:
    def __init__(self, *readings: MemoryReading) -> None:
        self.readings = list(readings)

    def __call__(self) -> MemoryReading:
        return self.readings.pop(0)


def test_real_reading_tracks_this_process():
    before = read_memory()
    assert 0 < before.rss_bytes <= before.host_total_bytes
    assert 0 < before.host_used_bytes <= before.host_total_bytes
    assert abs(before.rss_bytes - psutil.Process().memory_info().rss) < 64 * 1024**2
    block = np.ones(200 * 1024**2 // 8)  # 200 MiB, every page touched
    after = read_memory()
    assert after.rss_bytes - before.rss_bytes > 150 * 1024**2
    assert block.sum() == block.size
    assert before.cuda_total_bytes is None  # CPU-only process: CUDA is never initialised here


def test_states_follow_the_tighter_of_host_and_cuda():
    probe = Probe(reading(0.5), reading(0.9), reading(0.5, cuda=0.96), reading(0.97), reading(0.2, cuda=0.1))
    monitor = MemoryMonitor(MemoryConfig(warning_fraction=0.85, critical_fraction=0.95), probe=probe)
    states = []
    for _ in range(5):
        monitor.update()
        states.append((monitor.state, monitor.level))
    assert states == [("ok", 0), ("warning", 1), ("critical", 2), ("critical", 2), ("ok", 0)]
    assert monitor.peak_fraction == pytest.approx(0.97)
    metrics = monitor.metrics()
    assert metrics["memory/pressure_level"] == 0.0
    assert metrics["memory/cuda_used_fraction"] == pytest.approx(0.1)
    assert metrics["memory/cuda_reserved_bytes"] == pytest.approx(0.1 * 70 * GIB, rel=1e-6)
    assert metrics["memory/host_used_fraction"] == pytest.approx(0.2)
    monitor.reset()
    assert monitor.state == "ok" and monitor.reading is None and monitor.metrics() == {}


def test_micro_batches_shrink_before_the_oom():
    probe = Probe(reading(0.5), reading(0.9), reading(0.9), reading(0.97), reading(0.97), reading(0.97),
                  reading(0.5), reading(0.9))
    monitor = MemoryMonitor(MemoryConfig(warning_fraction=0.85, critical_fraction=0.95), probe=probe)
    sizes, size = [], 16
    for _ in range(8):
        monitor.update()
        size = monitor.micro_batch_size(size)
        size = monitor.micro_batch_size(size)  # asked twice per reading: shrinks at most once
        sizes.append(size)
    # ok, warning (halve once), warning again (leave), critical x3 (halve each reading, floor 1),
    # ok, a new warning episode (halve once).
    assert sizes == [16, 8, 8, 4, 2, 1, 1, 1]
    with pytest.raises(ValueError, match="^current "):
        monitor.micro_batch_size(0)


def test_thresholds_are_validated():
    with pytest.raises(ValueError, match="^warning_fraction "):
        MemoryMonitor(MemoryConfig(warning_fraction=0.95, critical_fraction=0.9))
    with pytest.raises(ValueError, match="^warning_fraction "):
        MemoryMonitor(MemoryConfig(warning_fraction=0.0, critical_fraction=0.9))


def test_cgroup_v1_working_set_excludes_inactive_file_cache(tmp_path):
    v1 = tmp_path / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(f"{8 * GIB}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{5 * GIB}\n")
    (v1 / "memory.stat").write_text(f"cache 1\ninactive_file 7\ntotal_inactive_file {GIB}\n")
    assert _cgroup_usage(tmp_path) == (4 * GIB, 8 * GIB)
    (v1 / "memory.limit_in_bytes").write_text("max\n")
    assert _cgroup_usage(tmp_path) is None
