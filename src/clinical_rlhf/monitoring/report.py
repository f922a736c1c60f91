"""`clinical-rlhf report runs/<name>`: one self-contained HTML file describing a run.

Reads only the run directory's local files (metrics.jsonl, events.jsonl, evaluation.json and
config.yaml when present), so it works whether or not MLflow was reachable. Sections: summary,
reward (total and each component), unsafe ratio against its threshold, KL and beta, Lagrange
multiplier, drift statistics, losses and system figures, a timeline of alerts, rollbacks and
stops (also drawn as vertical lines on every chart), the event log and the before/after
evaluation table.
"""

from __future__ import annotations

import math
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

import yaml

from clinical_rlhf.config import Config, config_from_mapping
from clinical_rlhf.errors import ClinicalRLHFError, InputDataError
from clinical_rlhf.monitoring.runfiles import (
    CONFIG_FILE, METRICS_FILE, REPORT_FILE, flatten_evaluation, read_evaluation, read_events, read_metrics,
    utc_now_iso,
)
from clinical_rlhf.monitoring.plots import Chart, Line, Marker, line_chart, timeline

EVENT_LINE_COLORS = {"rollback": "#ff7f0e", "emergency_stop": "#d62728"}
MAX_EVENT_ROWS = 300
P_VALUE_FLOOR = 1e-16
"""KS p-values are drawn on a log axis; 0 (below double precision) is drawn at this floor."""

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  background:#f6f7f9;color:#1d2330}
header{background:#1d2a44;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#c9d3e6;font-size:13px}main{padding:16px 28px 40px}
h2{font-size:17px;margin:26px 0 10px;border-bottom:1px solid #d9dde5;padding-bottom:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #dfe3ea;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:20px;margin-top:2px}.card span{font-size:12px;color:#5b6577}
.card.bad b{color:#c62828}.card.good b{color:#2e7d32}
.grid2{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:12px}
svg.chart{background:#fff;border:1px solid #dfe3ea;border-radius:6px;width:100%;height:auto}
table{border-collapse:collapse;background:#fff;font-size:13px;min-width:50%}
th,td{border:1px solid #dfe3ea;padding:4px 10px;text-align:left}th{background:#eef1f6}
td.num{text-align:right;font-variant-numeric:tabular-nums}.sev-critical{color:#c62828;font-weight:600}
.sev-warning{color:#e65100}.muted{color:#8a93a3;font-size:12px}
"""


def _load_config(run_dir: Path) -> Config:
    path = run_dir / CONFIG_FILE
    if not path.exists():
        return Config()
    try:
        return config_from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))
    except (ClinicalRLHFError, yaml.YAMLError):
        return Config()  # a config from another version still leaves the report readable


class _Series:
    """Column access to metrics.jsonl: steps and, per key, values aligned with them."""

    def __init__(self, records: list[tuple[int, dict[str, float]]]) -> None:
        self.steps = [step for step, _ in records]
        self._records = records
        self.keys = sorted({key for _, metrics in records for key in metrics})

    def values(self, key: str) -> list[float]:
        return [metrics.get(key, math.nan) for _, metrics in self._records]

    def line(self, key: str, name: str, *, floor: float | None = None, **style: Any) -> Line | None:
        if key not in self.keys:
            return None
        values = self.values(key)
        if floor is not None:
            values = [max(v, floor) if math.isfinite(v) else v for v in values]
        return Line(name, self.steps, values, **style)

    def last(self, key: str) -> float:
        for value in reversed(self.values(key)):
            if math.isfinite(value):
                return value
        return math.nan


def _lines(*candidates: Line | None) -> list[Line]:
    return [line for line in candidates if line is not None]


def _charts(series: _Series, cfg: Config, events: list[Marker]) -> list[Chart]:
    """The report's charts, in page order; events (rollbacks, stops) are drawn on each."""
    components = [key.split("/")[1] for key in series.keys
                  if key.startswith("reward/") and key.endswith("/mean") and key.count("/") == 2]
    components.sort(key=lambda name: (name != "total", name))
    rewards = [series.line(f"reward/{name}/mean", name, color="#1d2330" if name == "total" else None)
               for name in components]
    max_unsafe, target_kl, kl_target = cfg.safety.max_unsafe_ratio, cfg.training.ppo.target_kl, cfg.training.ppo.kl_target
    vetoes = [series.line(key, key.rsplit("/", 1)[1].replace("_", " ")) for key in series.keys
              if key.startswith("safety/vetoes/")]
    drift = cfg.monitoring.drift
    red = "#d62728"

    def pair(stat: str, **style: Any) -> list[Line]:
        return _lines(series.line(f"drift/reward/{stat}", "reward", **style),
                      series.line(f"drift/safety/{stat}", "safety score", **style))

    specs = [
        ("Reward: total and components", rewards, "mean reward", [], False),
        ("Unsafe (vetoed) answer ratio",
         [series.line("safety/unsafe_ratio", "unsafe ratio", color=red),
          series.line("safety/escalate_ratio", "escalated", color="#ff7f0e")],
         "ratio", [Marker(max_unsafe, f"max {max_unsafe:g}", red)], False),
        ("Vetoes by category (share of answers)", vetoes, "share of answers", [], False),
        # Two KLs, two targets (docs/training.md): the adaptive β steers the KL to the reference
        # towards `kl_target` (nats per answer); `target_kl` stops an update's epochs when the
        # per-token approximate KL to the rollout policy exceeds it. One chart each, so no one
        # reads one KL against the other's target.
        ("KL to the reference (per answer)", [series.line("objective/kl", "KL(policy ‖ reference)")], "nats",
         [Marker(kl_target, f"kl_target {kl_target:g} (adaptive β)")] if cfg.training.ppo.adaptive_kl else [],
         False),
        ("Approximate KL per update (to the rollout policy)",
         [series.line("policy/approx_kl", "approx KL", color="#9467bd")], "nats per token",
         [Marker(target_kl, f"target_kl {target_kl:g} (epoch early stop)")] if target_kl else [], False),
        ("KL coefficient β", [series.line("objective/kl_coef", "β", color="#9467bd")], "β", [], False),
        ("Lagrange multiplier λ", [series.line("lagrange/multiplier", "λ", color="#8c564b")], "λ", [],
         False),
        ("Drift: PSI against the reference", pair("psi"), "PSI",
         [Marker(0.1, "0.1 moderate", "#999"), Marker(0.25, "0.25 major", red)], False),
        ("Drift: KS p-value (log scale)", pair("ks_pvalue", floor=P_VALUE_FLOOR), "p-value",
         [Marker(drift.ks_alpha, f"α {drift.ks_alpha:g}", red)], True),
        ("Drift: CUSUM", pair("cusum"), "reference std",
         [Marker(drift.cusum_threshold, f"h {drift.cusum_threshold:g}", red)], False),
        ("Losses", [series.line("policy/loss", "policy"), series.line("value/loss", "value")], "loss", [],
         False),
        ("Time per iteration",
         [series.line("time/iteration_seconds", "iteration")  # contract name
          or series.line("time/iteration", "iteration")],  # the trainer's name
         "seconds", [], False),
        ("Memory in use",
         [series.line("memory/host_used_fraction", "host RAM"),
          series.line("memory/cuda_used_fraction", "CUDA memory", dashed=True)],
         "fraction of total", [], False),
    ]
    return [Chart(title, _lines(*lines), y_label, thresholds=thresholds, events=events, log_y=log_y)
            for title, lines, y_label, thresholds, log_y in specs]


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return escape(str(value))
    return "—" if not math.isfinite(value) else f"{value:.4g}"


def _cards(series: _Series, events: list[dict[str, Any]], cfg: Config) -> str:
    alerts = [e for e in events if e.get("kind") == "alert"]
    stops = [e for e in events if e.get("kind") == "emergency_stop"]
    rollbacks = [e for e in events if e.get("kind") == "rollback"]
    end = next((e for e in reversed(events) if e.get("kind") == "run_end"), None)
    unsafe = series.last("safety/unsafe_ratio")
    cards = [
        ("iterations", str(len(series.steps)), ""),
        ("final total reward", _number(series.last("reward/total/mean")), ""),
        ("final unsafe ratio", _number(unsafe), "bad" if unsafe > cfg.safety.max_unsafe_ratio else "good"),
        ("alerts", f"{len(alerts)} firings of {len({e.get('rule') for e in alerts})} rules "
                   f"({sum(e.get('severity') == 'critical' for e in alerts)} critical)",
         "bad" if alerts else "good"),
        ("rollbacks", str(len(rollbacks)), "bad" if rollbacks else ""),
        ("emergency stop", f"step {stops[0].get('step')}" if stops else "none", "bad" if stops else "good"),
        ("run status", escape(str(end.get("status"))) if end else "running or crashed",
         "good" if end and end.get("status") == "FINISHED" else "bad"),
    ]
    return "".join(f'<div class="card {cls}"><span>{escape(label)}</span><b>{value}</b></div>'
                   for label, value, cls in cards)


def group_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as table rows: the firings of one alert rule at consecutive steps become one row
    (`first_step`, `last_step`, `count`, the last firing's message), so a rule that holds for 27
    iterations is one line, not 27; every other event is a row of its own. Ordered by first step."""
    rows: list[dict[str, Any]] = []
    open_alerts: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        if event.get("kind") == "run_start":
            continue
        step = int(event.get("step", 0))
        if event.get("kind") != "alert":
            rows.append({**event, "first_step": step, "last_step": step, "count": 1})
            continue
        key = (str(event.get("rule", event.get("message", ""))), str(event.get("severity", "")))
        row = open_alerts.get(key)
        if row is not None and step - row["last_step"] <= 1:
            row.update(last_step=step, count=row["count"] + 1, message=event.get("message", ""))
            continue
        open_alerts[key] = row = {**event, "first_step": step, "last_step": step, "count": 1}
        rows.append(row)
    return sorted(rows, key=lambda row: row["first_step"])


def _event_table(events: list[dict[str, Any]]) -> str:
    rows = group_events(events)
    shown = rows[-MAX_EVENT_ROWS:]
    if not shown:
        return '<p class="muted">No events recorded.</p>'

    def steps(row: dict[str, Any]) -> str:
        return str(row["first_step"]) if row["count"] == 1 else f'{row["first_step"]}–{row["last_step"]}'

    html_rows = "".join(
        f'<tr><td class="num">{steps(e)}</td><td class="num">{e["count"]}</td>'
        f'<td>{escape(str(e.get("time", "")))}</td>'
        f'<td>{escape(str(e.get("kind", "")))}</td><td class="sev-{escape(str(e.get("severity", "")))}">'
        f'{escape(str(e.get("severity", "")))}</td><td>{escape(str(e.get("message", "")))}</td></tr>'
        for e in shown)
    note = (f'<p class="muted">Last {MAX_EVENT_ROWS} of {len(rows)} rows; events.jsonl has every event.</p>'
            if len(rows) > MAX_EVENT_ROWS else "")
    return (f'{note}<p class="muted">An alert that fired at consecutive steps is one row: its steps, how many '
            f"times, and the last firing's message.</p><table><tr><th>steps</th><th>times</th><th>time</th>"
            f"<th>kind</th><th>severity</th><th>message</th></tr>{html_rows}</table>")


def _config_summary(cfg: Config) -> str:
    """The settings a reader needs to interpret the curves; config.yaml has the rest."""
    ppo, training = cfg.training.ppo, cfg.training
    rows = [
        ("model", cfg.model.name), ("algorithm", training.algorithm),
        ("iterations", training.num_iterations), ("seed", training.seed),
        ("batch / mini-batch", f"{ppo.batch_size} / {ppo.mini_batch_size}"),
        ("learning rate", f"{ppo.learning_rate:g} ({ppo.lr_schedule})"),
        ("PPO epochs", ppo.ppo_epochs),
        ("KL: β start, adaptive, kl_target", f"{ppo.init_kl_coef:g}, {ppo.adaptive_kl}, {ppo.kl_target:g}"),
        ("target_kl (epoch early stop)", ppo.target_kl),
        ("reward weights", ", ".join(f"{k} {v:g}" for k, v in cfg.reward.weights.model_dump().items())),
        ("reward combination", cfg.reward.combination),
        ("max unsafe ratio (emergency stop)", cfg.safety.max_unsafe_ratio),
        ("LoRA r / α", f"{cfg.model_loading.lora_r} / {cfg.model_loading.lora_alpha}"),
        ("quantization", "4-bit" if cfg.model_loading.load_in_4bit else "8-bit" if cfg.model_loading.load_in_8bit
         else "none"),
        ("drift reference", cfg.monitoring.drift.reference),
    ]
    cells = "".join(f"<tr><td>{escape(name)}</td><td>{_number(value)}</td></tr>" for name, value in rows)
    return f"<table><tr><th>setting</th><th>value</th></tr>{cells}</table>"


def _samples_table(evaluation: dict[str, dict[str, Any]]) -> str:
    """The first held-out answers before and after training, side by side, with verdict and reward."""
    before, after = evaluation.get("before", {}).get("samples"), evaluation.get("after", {}).get("samples")
    if not before or not after:
        return '<p class="muted">No sample answers in evaluation.json.</p>'

    def answer(sample: dict[str, Any]) -> str:
        return (f'{escape(str(sample.get("response", "")))}<br><span class="muted">'
                f'{escape(str(sample.get("action", "")))} · reward {_number(sample.get("reward"))}</span>')

    rows = "".join(f'<tr><td>{escape(str(b.get("prompt", "")))}</td><td>{answer(b)}</td><td>{answer(a)}</td></tr>'
                   for b, a in zip(before, after))
    return f"<table><tr><th>question</th><th>before training</th><th>after training</th></tr>{rows}</table>"


def _evaluation_table(evaluation: dict[str, dict[str, Any]]) -> str:
    before, after = ({key: value for key, value in flatten_evaluation(evaluation.get(phase, {})).items()
                      if key != "samples"} for phase in ("before", "after"))
    names = list(dict.fromkeys([*before, *after]))
    if not names:
        return ('<p class="muted">No evaluation.json in this run (the trainer writes it before and '
                "after training).</p>")
    rows = []
    for name in names:
        b, a = before.get(name), after.get(name)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
        change = f"{a - b:+.4g}" if numeric else ""
        cells = "".join(f'<td class="num">{"—" if v is None else _number(v)}</td>' for v in (b, a))
        rows.append(f'<tr><td>{escape(name)}</td>{cells}<td class="num">{change}</td></tr>')
    return ("<table><tr><th>metric</th><th>before</th><th>after</th><th>change</th></tr>"
            + "".join(rows) + "</table>")


def render_report(run_dir: Path) -> str:
    """The report of `run_dir` as one HTML document (no external resources)."""
    run_dir = Path(run_dir)
    if not (run_dir / METRICS_FILE).exists():
        raise InputDataError(f"{run_dir} has no {METRICS_FILE}; pass a run directory such as runs/demo "
                             f"(written by `clinical-rlhf train`)")
    cfg = _load_config(run_dir)
    series = _Series(read_metrics(run_dir))
    events = read_events(run_dir)
    evaluation = read_evaluation(run_dir)
    markers = [Marker(float(e.get("step", 0)), f"{e.get('kind')}: {e.get('message', '')}",
                      EVENT_LINE_COLORS[e["kind"]])
               for e in events if e.get("kind") in EVENT_LINE_COLORS]
    steps = series.steps or [0]
    event_steps = [float(e.get("step", 0)) for e in events if e.get("kind") not in ("run_start", "run_end")]
    x_low, x_high = min([*steps, *event_steps]), max([*steps, *event_steps])
    charts = "".join(line_chart(replace(chart, x_range=(x_low, x_high)))
                     for chart in _charts(series, cfg, markers))
    title = f"Clinical RLHF run report: {run_dir.name}"
    subtitle = (f"{run_dir.resolve()} · model {cfg.model.name} · steps {min(steps)}–{max(steps)} · "
                f"generated {utc_now_iso()}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style>'
        f"</head><body><header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header><main>"
        f'<h2>Summary</h2><div class="cards">{_cards(series, events, cfg)}</div>'
        f'<h2>Training curves</h2><p class="muted">Dashed vertical lines: rollbacks (orange) and '
        f'emergency stops (red). Hover a point or line for its value.</p><div class="grid2">{charts}</div>'
        f"<h2>Timeline</h2>{timeline(events, x_low, x_high)}"
        f"<h2>Before / after evaluation</h2>{_evaluation_table(evaluation)}"
        f"<h2>Sample answers, before and after</h2>{_samples_table(evaluation)}"
        f"<h2>Configuration</h2>{_config_summary(cfg)}"
        f"<h2>Events</h2>{_event_table(events)}"
        f'<p class="muted">Built from {METRICS_FILE}, events.jsonl, evaluation.json and {CONFIG_FILE} '
        f"in the run directory.</p></main></body></html>"
    )


def write_report(run_dir: Path, output: Path | None = None) -> Path:
    """Render and write the report (default: `<run dir>/report.html`); returns its path."""
    output = Path(output) if output is not None else Path(run_dir) / REPORT_FILE
    html = render_report(run_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(html, encoding="utf-8")
    temporary.replace(output)
    return output

