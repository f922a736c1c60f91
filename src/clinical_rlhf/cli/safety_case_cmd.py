"""`clinical-rlhf safety-case RUN_DIR`: the run's safety case for a board, as one HTML file (and
a PDF when a converter is installed): wiring only, see `clinical_rlhf.evaluation.safety_case`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

# The safety case reads checkpoints (torch) and renders with the evaluation pages (numpy, scipy):
# imported inside the command, so that `--help` and the other commands never load them.

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("safety-case")
    def safety_case(
        run_dir: Annotated[Path, typer.Argument(help="Run directory of a training run, e.g. runs/demo.")],
        output: Annotated[Optional[Path], typer.Option(
            "--output", "-o", help="HTML file to write (default: RUN_DIR/safety_case.html).")] = None,
        pdf: Annotated[bool, typer.Option(help="Also write a PDF beside it when WeasyPrint or wkhtmltopdf "
                                               "is installed.")] = True,
    ) -> None:
        """Write the run's safety case: model fingerprints, config and data hashes, before/after on
        every judge and suite, vetoes by category, alerts and rollbacks, audit head, known limits."""
        from clinical_rlhf.evaluation.safety_case import build_safety_case
        from clinical_rlhf.evaluation.safety_case_html import render_safety_case, write_pdf

        case = build_safety_case(run_dir)
        html = render_safety_case(case)
        path = output or Path(run_dir) / "safety_case.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(html, encoding="utf-8")
        temporary.replace(path)
        console.print(f"written: {path}")
        if pdf:
            converter = write_pdf(html, path.with_suffix(".pdf"))
            console.print(f"written: {path.with_suffix('.pdf')} ({converter})" if converter else
                          "no PDF: install WeasyPrint (pip install weasyprint) or wkhtmltopdf for one")
        for limit in case["known_limits"]:
            console.print(f"[yellow]limit[/] {limit}", highlight=False)
