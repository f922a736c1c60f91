"""`clinical-rlhf corpus export --out DIR`: write the corpus the demo model is trained on.

Sized and seeded by the config's `demo_model` section and read from `safety.knowledge_dir`, so
the files are the corpus a run with the same config uses. Registered by `clinical_rlhf.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from clinical_rlhf.cli.common import DEFAULT_CONFIG, ConfigOption, OverrideOption, load
from clinical_rlhf.corpus import build_corpus

corpus_app = typer.Typer(help="The generated clinical corpus.", no_args_is_help=True)
console = Console()


@corpus_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for train.jsonl and heldout.jsonl.")],
    config: ConfigOption = DEFAULT_CONFIG,
    overrides: OverrideOption = None,
) -> None:
    """Generate the corpus and write its two splits as JSONL (one labelled example per line)."""
    cfg = load(config, overrides)
    demo = cfg.demo_model
    corpus = build_corpus(size=demo.corpus_size, unsafe_fraction=demo.unsafe_fraction,
                          heldout_fraction=demo.heldout_fraction, seed=demo.seed,
                          knowledge_dir=cfg.safety.knowledge_dir)
    paths = corpus.write_jsonl(out)
    stats = corpus.stats()
    table = Table(title=f"corpus (seed {demo.seed})", show_header=True)
    table.add_column("category")
    table.add_column("examples", justify="right")
    for category, count in stats["categories"].items():
        table.add_row(category, str(count))
    console.print(table)
    console.print(f"safe {stats['safe']}, unsafe {stats['unsafe']} {stats['unsafe_reasons']}")
    console.print(f"train {stats['train']} -> {paths.train}")
    console.print(f"heldout {stats['heldout']} -> {paths.heldout}")
    console.print(f"fingerprint {stats['fingerprint']}")


def register(app: typer.Typer) -> None:
    app.add_typer(corpus_app, name="corpus")
