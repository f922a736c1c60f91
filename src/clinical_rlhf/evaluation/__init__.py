"""Evaluation of trained policies: A/B comparisons with statistics, expert agreement and
conversation-level safety (`clinical-rlhf evaluate`, `clinical-rlhf agreement`; docs/evaluation.md).

    stats.py          bootstrap intervals, paired tests (Wilcoxon, sign), Cohen's kappa: pure numpy/scipy
    items.py          what is asked: single questions and conversations, prompt files
    conversations.py  the multi-turn red-flag set built from the knowledge base
    agreement.py      how often guard + reward order answers as the annotators did
    policies.py       checkpoints and the reference policy, loaded into one bundle (torch)
    ab.py             sampling both policies with the same random numbers, judging, summaries (torch)
    runner.py         one evaluation end to end, and its JSON/HTML files
    html.py           the self-contained HTML page
    export.py         headline metrics to Prometheus, the alert rules and the run's MLflow run

Only `policies`, `ab` and `runner` need torch; the rest imports without it.
"""
