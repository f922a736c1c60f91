"""Evaluation of trained policies: A/B comparisons with statistics, expert agreement and
conversation-level safety (`clinical-rlhf evaluate`, `clinical-rlhf agreement`; docs/evaluation.md).

    stats.py          bootstrap intervals, paired tests (Wilcoxon, sign), Cohen's kappa: pure numpy/scipy
    items.py          what is asked: single questions and conversations, prompt files
    conversations.py  the multi-turn red-flag set built from the knowledge base
    agreement.py      how often guard + reward order answers as the annotators did
    policies.py       checkpoints and the reference policy, loaded into one bundle (torch)
    ab.py             sampling both policies with the same random numbers, judging, summaries (torch)
    runner.py         one evaluation end to end, and its JSON/HTML files
    html.py           the self-contained HTML page (html_cells.py: the cells its sections share)
    export.py         headline metrics to Prometheus, the alert rules and the run's MLflow run
    judges.py         judges apart from the reward: guard (training signal), holdout, llm
    judge_verdict.py  what every judge gives an answer, and the conversation as a judge reads it
    rubrics.py        the LLM judge's rubric files and the strict reading of its replies
    llm_judge.py      the LLM judge and its judgement cache
    judge_backends.py the LLM judge's local (transformers) and OpenAI-compatible backends (serve/)
    judging.py        every judge on every answer, per-judge summaries, kappa, disagreements
    judge_html.py     the page's judge and suite sections
    suites.py         external suites from user files (HealthBench, MedSafetyBench, CARES formats)
    suite_scoring.py  their grading by the LLM judge
    safety_case.py    the safety case of a run (`clinical-rlhf safety-case`), safety_case_html.py its page

`policies`, `judge_backends` and `safety_case` import torch; `ab` and `runner` need it only to
sample answers and load it then; the rest imports without it.
"""
