"""Memory pressure: process RSS, host memory and CUDA memory against warning/critical fractions.

    monitor = MemoryMonitor(cfg.monitoring.memory)
    monitor.update()                                      # once per iteration (or micro-batch)
    step_metrics |= monitor.metrics()                     # memory/* and memory/pressure_level
    micro_batch = monitor.micro_batch_size(micro_batch)   # shrink before the OOM, not after

Host memory is what the kernel's OOM killer looks at: inside a container with a memory limit
(cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`), the cgroup's usage minus its inactive
file cache (the "working set" the kubelet evicts on) against that limit; elsewhere
`total - available` from /proc/meminfo (psutil). CUDA memory is `total - free` of the current
device (`torch.cuda.mem_get_info`, which also counts other processes), read only when this
process has already initialised CUDA: the monitor never imports torch or creates a CUDA
context itself.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from clinical_rlhf.config import MemoryConfig

STATES = ("ok", "warning", "critical")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class MemoryReading:
    rss_bytes: int
    """Resident set size of this process."""
    host_used_bytes: int
    host_total_bytes: int
    """Effective host limit: physical memory, or the cgroup limit when lower."""
    cuda_allocated_bytes: int | None = None
    """Bytes held by live tensors (torch.cuda.memory_allocated)."""
    cuda_reserved_bytes: int | None = None
    """Bytes held by torch's caching allocator (torch.cuda.memory_reserved)."""
    cuda_used_bytes: int | None = None
    """Device memory in use by any process (total - free)."""
    cuda_total_bytes: int | None = None

    @property
    def total_bytes(self) -> int:
        """The host limit (same as `host_total_bytes`)."""
        return self.host_total_bytes

    @property
    def host_fraction(self) -> float:
        return self.host_used_bytes / self.host_total_bytes if self.host_total_bytes else 0.0

    @property
    def cuda_fraction(self) -> float | None:
        if not self.cuda_total_bytes or self.cuda_used_bytes is None:
            return None
        return self.cuda_used_bytes / self.cuda_total_bytes

    @property
    def fraction(self) -> float:
        """The tighter of host and CUDA."""
        cuda = self.cuda_fraction
        return self.host_fraction if cuda is None else max(self.host_fraction, cuda)

    def as_metrics(self) -> dict[str, float]:
        metrics = {
            "memory/rss_bytes": float(self.rss_bytes),
            "memory/host_used_bytes": float(self.host_used_bytes),
            "memory/host_total_bytes": float(self.host_total_bytes),
            "memory/host_used_fraction": self.host_fraction,
        }
        if self.cuda_total_bytes is not None:
            for name in ("allocated", "reserved", "used", "total"):
                value = getattr(self, f"cuda_{name}_bytes")
                if value is not None:
                    metrics[f"memory/cuda_{name}_bytes"] = float(value)
            if self.cuda_fraction is not None:
                metrics["memory/cuda_used_fraction"] = self.cuda_fraction
        return metrics


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, names: tuple[str, ...]) -> int:
    """First of `names` found in a cgroup memory.stat file, or 0."""
    try:
        entries = dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    except OSError:
        return 0
    for name in names:
        if name in entries and entries[name].strip().isdigit():
            return int(entries[name])
    return 0


def _cgroup_usage(root: Path = CGROUP_ROOT) -> tuple[int, int] | None:
    """(working set, limit) of this process's memory cgroup, or None when unlimited or absent.

    cgroup v2: memory.current / memory.max of the directory named by the `0::` line of
    /proc/self/cgroup. cgroup v1 (older Docker): memory.usage_in_bytes / memory.limit_in_bytes
    at the memory controller's mount root, which is the container's own group. The working set
    subtracts the inactive file cache, which the kernel reclaims before any OOM kill.
    """
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        if line.startswith("0::"):
            directory = root / line[3:].lstrip("/")
            limit = _read_int(directory / "memory.max")  # "max" (no limit) reads as None
            current = _read_int(directory / "memory.current")
            if limit is not None and current is not None:
                inactive = _stat_value(directory / "memory.stat", ("inactive_file",))
                return max(current - inactive, 0), limit
    v1 = root / "memory"
    limit, current = _read_int(v1 / "memory.limit_in_bytes"), _read_int(v1 / "memory.usage_in_bytes")
    if limit is None or current is None:
        return None
    inactive = _stat_value(v1 / "memory.stat", ("total_inactive_file", "inactive_file"))
    return max(current - inactive, 0), limit


def read_memory() -> MemoryReading:
    """The current reading of this process, its host (or container) and its CUDA device."""
    virtual = psutil.virtual_memory()
    used, total = virtual.total - virtual.available, virtual.total
    container = _cgroup_usage()
    if container is not None and container[1] < total:
        used, total = container
    cuda: dict[str, int] = {}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        free, device_total = torch.cuda.mem_get_info()
        cuda = {"cuda_allocated_bytes": int(torch.cuda.memory_allocated()),
                "cuda_reserved_bytes": int(torch.cuda.memory_reserved()),
                "cuda_used_bytes": int(device_total - free), "cuda_total_bytes": int(device_total)}
    return MemoryReading(rss_bytes=psutil.Process().memory_info().rss, host_used_bytes=int(used),
                         host_total_bytes=int(total), **cuda)


class MemoryMonitor:
    """State `ok | warning | critical` from the tighter of host and CUDA memory fractions."""

    def __init__(self, cfg: MemoryConfig, *, probe: Callable[[], MemoryReading] = read_memory) -> None:
        if not 0.0 < cfg.warning_fraction < cfg.critical_fraction <= 1.0:
            raise ValueError(f"warning_fraction must be > 0 and below critical_fraction "
                             f"(monitoring.memory), got {cfg.warning_fraction} and {cfg.critical_fraction}")
        self.cfg = cfg
        self._probe = probe
        self.reset()

    def reset(self) -> None:
        self.reading: MemoryReading | None = None
        """The last reading (None before the first update)."""
        self.state = "ok"
        self.peak_fraction = 0.0
        """Highest fraction seen since the last reset."""
        self._readings = 0
        self._shrunk_at: int | None = None  # reading count of the last shrink
        self._shrunk_in_episode = False  # a shrink since pressure last was ok

    @property
    def level(self) -> int:
        """0 ok, 1 warning, 2 critical (the `memory/pressure_level` metric)."""
        return STATES.index(self.state)

    def update(self) -> MemoryReading:
        reading = self._probe()
        fraction = reading.fraction
        if not math.isfinite(fraction):
            fraction = 0.0
        self.peak_fraction = max(self.peak_fraction, fraction)
        if fraction >= self.cfg.critical_fraction:
            self.state = "critical"
        elif fraction >= self.cfg.warning_fraction:
            self.state = "warning"
        else:
            self.state = "ok"
            self._shrunk_in_episode = False
        self.reading = reading
        self._readings += 1
        return reading

    def metrics(self) -> dict[str, float]:
        """The last reading as namespaced metrics, with `memory/pressure_level`."""
        if self.reading is None:
            return {}
        return {**self.reading.as_metrics(), "memory/pressure_level": float(self.level)}

    def micro_batch_size(self, current: int) -> int:
        """The micro-batch size to use next: halved once when pressure reaches `warning`, and
        once per reading while it stays `critical`; never below 1. A warning that persists after
        one halving is left alone (the caching allocator keeps what it reserved)."""
        if current < 1:
            raise ValueError(f"current must be >= 1, got {current}")
        fresh = self._shrunk_at != self._readings
        if fresh and (self.state == "critical" or (self.state == "warning" and not self._shrunk_in_episode)):
            self._shrunk_in_episode = True
            self._shrunk_at = self._readings
            return max(1, current // 2)
        return current
