"""Throughput and latency of the served API with dynamic batching on and off, in one run.

    python benchmarks/serve_batching.py [--requests 64] [--max-tokens 32] [--strict]

A demo-sized GPT-2 (hidden 128, 4 layers, built locally in a temporary directory) is served twice
on loopback, each in a worker process with one torch thread: one with `serve.batching.enabled: true`
(max 16 requests, 10 ms window), one with it off. The levels alternate between the two servers,
so that load from other jobs on the machine hits both alike. Each server gets the same chat requests
(greedy, `max_tokens` tokens, the audit log fsynced per group of records, as in production) at
concurrency 1, 4 and 16: a warm-up round, then `--requests` timed requests per level.
Reported: requests/s, p50/p95 latency as the client sees it, the mean batch size, and the guard's
share of the server's request time (guard seconds / request seconds, from the server's own
Prometheus histograms). Targets: >= 3x the requests/s at concurrency 16 with batching on, and a
guard share under 2%. `--strict` exits 1 when either is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

CONCURRENCY = (1, 4, 16)
RATIO_TARGET = 3.0
GUARD_SHARE_TARGET = 0.02
QUESTIONS = (
    "How much paracetamol can I take in a day for back pain?",
    "What helps a mild sore throat and a runny nose?",
    "Can I take ibuprofen with my blood pressure tablets?",
    "I have had a headache for two days, should I worry?",
    "Is it safe to drink alcohol while taking metformin?",
    "My child has a temperature of 38.5, what should I do?",
    "What are the side effects of amoxicillin?",
    "How long does a cold usually last in adults?",
)
API_KEY = "crl-benchmark-key-0123456789abcdefghijklmnop"


# ----------------------------------------------------------------------------- the server (worker)


def worker(model_dir: str, runs_dir: str, batching: bool, url_file: str) -> None:
    """Serve until SIGTERM; write the server's URL to `url_file` once it listens."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import signal

    import torch

    torch.set_num_threads(1)
    from clinical_rlhf.models.tiny import tiny_model_config
    from clinical_rlhf.serve import create_app, running_server

    cfg = tiny_model_config(model_dir, training={"runs_dir": runs_dir, "run_name": "on" if batching else "off"},
                            serve={"batching": {"enabled": batching}, "rate_limit": {"requests_per_minute": None}})
    app = create_app(cfg, environ={"CLINICAL_RLHF_API_KEYS": f"bench:{API_KEY}"})
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before any thread starts: they inherit it
    with running_server(app) as server:
        Path(url_file).write_text(server.url)
        signal.sigwait({signal.SIGTERM})


# ----------------------------------------------------------------------------- the client


def metric_sum(exposition: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.startswith(prefix))


async def one_level(url: str, concurrency: int, requests: int, max_tokens: int, max_seconds: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        async def ask(i: int) -> float:
            body = {"model": "clinical-demo", "temperature": 0, "max_tokens": max_tokens,
                    "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}
            start = time.perf_counter()
            response = await client.post("/v1/chat/completions", json=body)
            response.raise_for_status()
            return time.perf_counter() - start

        async def run(count: int) -> list[float]:
            queue = iter(range(count))
            latencies: list[float] = []
            stop_at = time.perf_counter() + max_seconds

            async def user() -> None:
                for i in queue:
                    if time.perf_counter() > stop_at:
                        return
                    latencies.append(await ask(i))

            await asyncio.gather(*(user() for _ in range(concurrency)))
            return latencies

        await run(concurrency)  # warm-up: connections open, first batches compiled
        before = (await client.get("/metrics")).text
        start = time.perf_counter()
        latencies = await run(requests)
        wall = time.perf_counter() - start
        after = (await client.get("/metrics")).text
    delta = {name: metric_sum(after, name) - metric_sum(before, name) for name in (
        "clinical_rlhf_serve_guard_latency_seconds_sum",
        'clinical_rlhf_serve_request_duration_seconds_sum{endpoint="chat_completions"}',
        "clinical_rlhf_serve_batch_size_sum", "clinical_rlhf_serve_batch_size_count")}
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency, "requests": len(latencies), "rps": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "mean_batch": delta["clinical_rlhf_serve_batch_size_sum"] / max(1.0, delta["clinical_rlhf_serve_batch_size_count"]),
        "guard_share": delta["clinical_rlhf_serve_guard_latency_seconds_sum"]
        / max(1e-9, delta['clinical_rlhf_serve_request_duration_seconds_sum{endpoint="chat_completions"}']),
    }


@contextlib.contextmanager
def server_process(model_dir: Path, work: Path, batching: bool) -> Iterator[str]:
    """A worker process serving the model (batching on or off); yields its URL once ready."""
    mode = "on" if batching else "off"
    url_file = work / f"url-{mode}"
    command = [sys.executable, __file__, "--worker", "--model", str(model_dir), "--runs", str(work / "runs"),
               "--url-file", str(url_file)] + (["--batching"] if batching else [])
    with open(work / f"server-{mode}.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            yield _wait_ready(process, url_file, timeout=120)
        finally:
            process.terminate()
            process.wait(timeout=60)


def _wait_ready(process: subprocess.Popen, url_file: Path, timeout: float) -> str:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the benchmark server exited early (code {process.returncode}); see its log")
        if url_file.exists() and url_file.read_text():
            url = url_file.read_text()
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    raise SystemExit(f"the benchmark server was not ready within {timeout:g} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64, help="timed requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=32, help="answer length (tokens)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time cap per concurrency level")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batching", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--runs", help=argparse.SUPPRESS)
    parser.add_argument("--url-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.model, args.runs, args.batching, args.url_file)
        return 0

    from clinical_rlhf.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model("gpt2", work / "model", hidden=128, layers=4, heads=4, context_length=256)
        results: dict[str, list[dict]] = {"off": [], "on": []}
        with server_process(model_dir, work, False) as off, server_process(model_dir, work, True) as on:
            for concurrency in CONCURRENCY:  # interleaved, so load from other jobs hits both modes alike
                for mode, url in (("off", off), ("on", on)):
                    results[mode].append(asyncio.run(
                        one_level(url, concurrency, args.requests, args.max_tokens, args.max_seconds)))
    print(f"\nchat completions, {args.max_tokens} tokens greedy, demo-sized GPT-2 on CPU (1 torch thread)\n")
    print(f"{'batching':>8} {'conc.':>5} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'batch':>6} {'guard':>7}")
    for mode, rows in results.items():
        for row in rows:
            print(f"{mode:>8} {row['concurrency']:>5} {row['rps']:>8.1f} {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} "
                  f"{row['mean_batch']:>6.1f} {100 * row['guard_share']:>6.2f}%")
    ratio = results["on"][-1]["rps"] / results["off"][-1]["rps"]
    guard = max(row["guard_share"] for rows in results.values() for row in rows)
    print(f"\nthroughput at concurrency {CONCURRENCY[-1]}, batching on / off: {ratio:.1f}x (target >= {RATIO_TARGET:g}x)")
    print(f"largest guard share of request time: {100 * guard:.2f}% (target < {100 * GUARD_SHARE_TARGET:g}%)")
    missed = ratio < RATIO_TARGET or guard >= GUARD_SHARE_TARGET
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
