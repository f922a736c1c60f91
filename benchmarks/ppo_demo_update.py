"""Time per PPO update on the demo config, this revision against another one.

    python benchmarks/ppo_demo_update.py [--rounds 3] [--iterations 4]        # this revision alone
    python benchmarks/ppo_demo_update.py --baseline-src /tmp/base/src           # against another one

Each side is a real `clinical-rlhf train` run of `config/clinical_rlhf_config.yaml` (batch of 32
answers of up to 96 tokens, mini-batches of 16, 4 PPO epochs, one torch thread) with its own
source tree first on `PYTHONPATH`. Against a baseline both sides load one and the same built
demo model (`--model`, default: the demo model's cache, `clinical-rlhf build-demo-model`), since
each revision would otherwise build its own; alone, the run uses (or builds) the demo model as
`clinical-rlhf train` does. Only the evaluation is cut to one prompt (`training.eval_size=1`),
and `safety.max_unsafe_ratio` is pinned to the demo's 0.6 (older revisions' demo config lacks it).
The sides run one after the other in alternating order (A B, B A, ...) for `--rounds` rounds, so a
change of load on a shared machine hits both alike. `time/update` of every iteration after the first (the
first warms up) is read back from the run's `metrics.jsonl`; the table gives medians with their
range, and the ratio is the median of the per-round ratios of medians. Both sides sample their
own rollouts with the same seed, so the answers (and their lengths) may differ slightly when the
sampling code differs; the mean answer length is printed beside each time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config" / "clinical_rlhf_config.yaml"
DEFAULT_MODEL = Path.home() / ".cache" / "clinical-rlhf" / "demo-model"


def run_side(src: Path, model: Path | None, runs_dir: Path, name: str, iterations: int) -> list[tuple[float, float]]:
    """(time/update in s, mean answer length) of each iteration after the first of one training run."""
    command = [sys.executable, "-m", "clinical_rlhf.cli", "train", "--config", str(CONFIG),
               "--set", f"training.runs_dir={runs_dir}",
               "--set", f"training.run_name={name}", "--set", f"training.num_iterations={iterations}",
               "--set", "training.eval_size=1", "--set", "safety.max_unsafe_ratio=0.6"]
    command += ["--set", f"model.path={model}"] if model is not None else []
    environment = os.environ | {"PYTHONPATH": str(src)}
    finished = subprocess.run(command, env=environment, capture_output=True, text=True, cwd=ROOT)
    if finished.returncode != 0:
        raise SystemExit(f"the {name} run failed (exit {finished.returncode}):\n{finished.stdout[-2000:]}"
                         f"{finished.stderr[-2000:]}")
    rows = [json.loads(line) for line in (runs_dir / name / "metrics.jsonl").read_text().splitlines()]
    timed = [row["metrics"] for row in rows if "time/update" in row.get("metrics", {})]
    return [(metrics["time/update"], metrics["rollout/response_length"]) for metrics in timed[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-src", type=Path, help="src/ folder of the revision to compare with")
    parser.add_argument("--model", type=Path, help=f"a built demo model directory (with a baseline: {DEFAULT_MODEL})")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of one run per side")
    parser.add_argument("--iterations", type=int, default=4, help="PPO iterations per run (the first is not timed)")
    options = parser.parse_args()
    if options.iterations < 2 or options.rounds < 1:
        raise SystemExit("--iterations must be at least 2 (the first is not timed) and --rounds at least 1")
    sides = {"this revision": ROOT / "src"}
    if options.baseline_src is not None:
        if not (options.baseline_src / "clinical_rlhf").is_dir():
            raise SystemExit(f"{options.baseline_src} holds no clinical_rlhf package: pass the src/ folder of a checkout")
        sides["baseline"] = options.baseline_src
        options.model = options.model or DEFAULT_MODEL
    if options.model is not None and not (options.model / "config.json").is_file():
        raise SystemExit(f"no built model in {options.model}: run `clinical-rlhf build-demo-model` or pass --model")
    times: dict[str, list[float]] = {side: [] for side in sides}
    lengths: dict[str, list[float]] = {side: [] for side in sides}
    ratios = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for round_index in range(options.rounds):
            order = list(sides) if round_index % 2 == 0 else list(reversed(sides))
            medians = {}
            for side in order:
                name = f"{'current' if side == 'this revision' else 'baseline'}-{round_index}"
                measured = run_side(sides[side], options.model, Path(runs_dir), name, options.iterations)
                times[side] += [seconds for seconds, _ in measured]
                lengths[side] += [length for _, length in measured]
                medians[side] = statistics.median(seconds for seconds, _ in measured)
                print(f"round {round_index + 1} {side:<14} {medians[side]:.3f} s / update", flush=True)
            if "baseline" in medians:
                ratios.append(medians["this revision"] / medians["baseline"])
    print(f"\ndemo config, {options.rounds} rounds x {options.iterations - 1} timed updates; median [min-max]")
    for side in sides:
        print(f"  {side:<14}{statistics.median(times[side]):7.3f} s / update [{min(times[side]):.3f}-"
              f"{max(times[side]):.3f}]  answers of {statistics.mean(lengths[side]):.1f} tokens on average")
    if ratios:
        print(f"  ratio (median of per-round ratios): {statistics.median(ratios):.2f}x "
              f"[{min(ratios):.2f}-{max(ratios):.2f}]")


if __name__ == "__main__":
    main()
