"""The demo model builder: answer-only SFT, reproducibility, the cache manifest, the CLI.

Runs on a small stand-in corpus and a 2-layer model so that each build takes a second or two.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from clinical_rlhf.config import load_config
from clinical_rlhf.models import demo
from clinical_rlhf.models.registry import get_model_entry
from clinical_rlhf.models.sft import IGNORE_INDEX, collate, encode_examples, learning_rate_factor

SMALL = ["demo_model.vocab_size=320", "demo_model.n_layer=2", "demo_model.n_embd=64", "demo_model.n_head=4",
         "demo_model.context_length=128", "demo_model.corpus_size=200", "demo_model.sft_epochs=3",
         "demo_model.sft_batch_size=16", "demo_model.sft_learning_rate=3e-3"]


def small_config(directory, *extra: str):
    return load_config(None, [*SMALL, f"demo_model.cache_dir={directory}", "model.device=cpu", *extra])


@pytest.fixture(scope="module")
def built(tmp_path_factory, standin_corpus):
    cfg = small_config(tmp_path_factory.mktemp("demo") / "model")
    return cfg, demo.build_demo_model(cfg, corpus=standin_corpus)


def test_sft_loss_is_on_answers_only(built, standin_corpus) -> None:
    from transformers import AutoTokenizer

    cfg, _ = built
    tokenizer = AutoTokenizer.from_pretrained(cfg.demo_model.cache_dir)
    entry = get_model_entry("clinical-demo")
    examples = encode_examples(tokenizer, entry.format_prompt, standin_corpus.train[:3], context_length=128)
    batch = collate(examples, tokenizer.pad_token_id)
    for row, example in enumerate(examples):
        prompt_ids = tokenizer(entry.format_prompt(standin_corpus.train[row].prompt))["input_ids"]
        assert list(example.input_ids[:example.prompt_length]) == prompt_ids
        labels = batch["labels"][row]
        assert (labels[:example.prompt_length] == IGNORE_INDEX).all()
        answer = labels[example.prompt_length:len(example.input_ids)]
        assert answer[-1].item() == tokenizer.eos_token_id
        decoded = tokenizer.decode(answer[:-1])
        assert decoded.strip() == standin_corpus.train[row].answer
        assert (labels[len(example.input_ids):] == IGNORE_INDEX).all()  # padding


def test_build_learns_the_answers_and_writes_a_manifest(built, standin_corpus) -> None:
    cfg, report = built
    directory = cfg.demo_model.cache_dir
    manifest = json.loads((directory / demo.MANIFEST).read_text())
    assert manifest["identity"]["demo_model"]["seed"] == cfg.demo_model.seed
    assert manifest["report"]["steps"] == report.steps == report.total_steps
    assert not report.stopped_early
    # An untrained model scores about ln(vocab) = 5.8; 42 steps on the stand-in get to ~3.
    assert report.heldout_loss < 0.6 * math.log(cfg.demo_model.vocab_size)
    prompts = [prompt for prompt, _ in report.samples]
    assert len(prompts) == len(set(prompts)) == 4
    categories = {e.prompt: e.category for e in standin_corpus.heldout}
    assert {categories[p] for p in prompts[:2]} == {"emergency", "medication_dosing"}  # one per category first
    assert all(answer for _, answer in report.samples)


def test_same_seed_rebuilds_identical_weights(built, tmp_path, standin_corpus) -> None:
    from safetensors.torch import load_file

    cfg, _ = built
    again = small_config(tmp_path / "again")
    demo.build_demo_model(again, corpus=standin_corpus)
    first = load_file(cfg.demo_model.cache_dir / "model.safetensors")
    second = load_file(again.demo_model.cache_dir / "model.safetensors")
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_ensure_reuses_a_current_build_and_rebuilds_a_stale_one(built, standin_corpus, monkeypatch) -> None:
    cfg, _ = built
    calls = []
    monkeypatch.setattr(demo, "build_demo_model", lambda cfg, corpus: calls.append(cfg))
    assert demo.staleness(cfg.demo_model.cache_dir, demo.build_identity(cfg.demo_model)) is None
    assert demo.ensure_demo_model(cfg, corpus=standin_corpus) == cfg.demo_model.cache_dir
    assert calls == []
    changed = small_config(cfg.demo_model.cache_dir, "demo_model.sft_epochs=4")
    demo.ensure_demo_model(changed, corpus=standin_corpus)
    assert calls == [changed]
    # Where the model is written and how long a build may take do not make it stale.
    moved_budget = small_config(cfg.demo_model.cache_dir, "demo_model.max_build_seconds=30")
    demo.ensure_demo_model(moved_budget, corpus=standin_corpus)
    assert len(calls) == 1


def test_build_policy_loads_the_demo_model_when_no_path_is_set(built, standin_corpus, monkeypatch) -> None:
    from clinical_rlhf.models import build_policy

    cfg, _ = built
    monkeypatch.setattr(demo, "load_corpus", lambda settings: standin_corpus)
    bundle = build_policy(cfg)
    assert bundle.info.source == str(cfg.demo_model.cache_dir)
    prompt = bundle.format_prompt(standin_corpus.heldout[0].prompt)
    batch = bundle.tokenizer([prompt], return_tensors="pt")
    with torch.no_grad():
        output = bundle.model.generate(**batch, max_new_tokens=20, do_sample=False,
                                       pad_token_id=bundle.tokenizer.pad_token_id)
    assert output.shape[1] > batch["input_ids"].shape[1]


def test_time_budget_stops_training_and_says_so(tmp_path, standin_corpus, caplog) -> None:
    cfg = small_config(tmp_path / "hurried", "demo_model.max_build_seconds=1", "demo_model.sft_epochs=500")
    report = demo.build_demo_model(cfg, corpus=standin_corpus)
    assert report.stopped_early and report.steps < report.total_steps
    assert "max_build_seconds=1 reached" in caplog.text


def test_learning_rate_warms_up_then_decays_to_a_floor() -> None:
    assert learning_rate_factor(0, 100, 10) == pytest.approx(0.1)
    assert learning_rate_factor(9, 100, 10) == pytest.approx(1.0)
    assert learning_rate_factor(10, 100, 10) == pytest.approx(1.0)
    assert learning_rate_factor(100, 100, 10) == pytest.approx(0.1)


def test_cli_builds_then_reports_current(tmp_path, standin_corpus, monkeypatch) -> None:
    from typer.testing import CliRunner

    from clinical_rlhf.cli import app

    monkeypatch.setattr(demo, "load_corpus", lambda settings: standin_corpus)
    config = tmp_path / "demo.yaml"
    config.write_text("model:\n  device: cpu\n", encoding="utf-8")
    args = ["build-demo-model", "--config", str(config),
            *[item for override in SMALL for item in ("--set", override)],
            "--set", f"demo_model.cache_dir={tmp_path / 'cli'}"]
    runner = CliRunner()
    first = runner.invoke(app, args, env={"COLUMNS": "300"})  # no wrapping inside the checked phrases
    assert first.exit_code == 0, first.output
    assert "held-out prompts, sampled answers" in first.output and "Q:" in first.output
    assert "built " in first.output and "held-out answer loss" in first.output
    second = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert second.exit_code == 0 and "is current" in second.output


def test_a_build_on_first_use_leaves_the_callers_seed_and_threads_alone(tmp_path, standin_corpus) -> None:
    """`train` seeds, then asks for the demo model: whether it had to build it first must not change
    the run's random draws (LoRA init, rollouts) nor its thread count."""
    from clinical_rlhf.seeding import seed_everything

    threads = torch.get_num_threads()
    seed_everything(42)
    expected = torch.rand(4)
    seed_everything(42)
    demo.ensure_demo_model(small_config(tmp_path / "model"), corpus=standin_corpus)  # builds now
    assert torch.equal(torch.rand(4), expected)
    assert torch.get_num_threads() == threads
