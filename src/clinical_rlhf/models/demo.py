"""The local demo model: a small causal LM SFT'd on the project's clinical corpus, built offline.

`ensure_demo_model(cfg)` returns `demo_model.cache_dir`, building it first when it is missing
or stale. A build is identified by a manifest (builder version, every `demo_model` key that
shapes the weights, the prompt template, a hash of the corpus generator's code and knowledge
data): change any of them and the next use rebuilds. Same config, same machine -> same weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from clinical_rlhf.config import Config, DemoModelConfig
from clinical_rlhf.corpus import build_corpus
from clinical_rlhf.models.hardware import available_cpu_cores
from clinical_rlhf.models.registry import get_model_entry
from clinical_rlhf.models.sft import encode_examples, evaluate_answer_loss, train_sft
from clinical_rlhf.models.tiny import architecture_config, progress_bars_off
from clinical_rlhf.models.tokenizer import train_bpe_tokenizer
from clinical_rlhf.seeding import preserved_random_state, seed_everything

logger = logging.getLogger(__name__)

BUILDER_VERSION = 1
"""Bump when the recipe (tokenizer, architecture mapping, SFT loop) changes, so caches rebuild."""

MANIFEST = "manifest.json"
DEMO_ID = "clinical-demo"

# `demo_model` keys that do not change the weights (where they go, how long we may take).
_NOT_IDENTITY = {"cache_dir", "max_build_seconds"}


@dataclass
class BuildReport:
    """What a build did, printed by the CLI and stored in the manifest."""

    directory: str
    parameters: int
    seconds: float
    steps: int
    total_steps: int
    final_loss: float
    heldout_loss: float
    stopped_early: bool
    samples: list[tuple[str, str]] = field(default_factory=list)
    """(held-out prompt, sampled answer) pairs."""


def load_corpus(demo: DemoModelConfig):
    """The corpus from `clinical_rlhf.corpus.build_corpus`, sized and seeded by `demo_model`."""
    return build_corpus(size=demo.corpus_size, unsafe_fraction=demo.unsafe_fraction,
                        heldout_fraction=demo.heldout_fraction, seed=demo.seed)


def corpus_sha256(corpus) -> str:
    """Hash of the prompt/answer text of both splits, in order (recorded in the manifest)."""
    digest = hashlib.sha256()
    for split_name, split in (("train", corpus.train), ("heldout", corpus.heldout)):
        for example in split:
            digest.update(json.dumps([split_name, example.prompt, example.answer]).encode("utf-8"))
    return digest.hexdigest()


def corpus_source_sha256() -> str:
    """Hash of what the corpus is generated from: the corpus and knowledge code and the shipped
    knowledge data. Together with the `demo_model` keys it determines the corpus, and it takes
    milliseconds where generating the corpus to hash it would take seconds on every load."""
    package = Path(__file__).resolve().parents[1]
    files = [*sorted((package / "corpus").rglob("*.py")), *sorted((package / "knowledge").rglob("*.py")),
             *sorted(p for p in (package / "data" / "knowledge").rglob("*") if p.is_file())]
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(package)).encode("utf-8"))
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_identity(demo: DemoModelConfig) -> dict:
    """Everything the weights depend on; equal identities mean an equal model."""
    keys = {k: v for k, v in demo.model_dump(mode="json").items() if k not in _NOT_IDENTITY}
    return {"builder_version": BUILDER_VERSION, "demo_model": keys,
            "prompt_template": get_model_entry(DEMO_ID).prompt_template,
            "corpus_source_sha256": corpus_source_sha256()}


def read_manifest(directory: Path) -> dict | None:
    try:
        return json.loads((Path(directory) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def staleness(directory: Path, identity: dict) -> str | None:
    """Why the cached model cannot be used (`None`: it can)."""
    manifest = read_manifest(directory)
    if manifest is None:
        return f"no built model in {directory}"
    if manifest.get("identity") != identity:
        return f"the model in {directory} was built from a different config or corpus"
    if not any(Path(directory).glob("*.safetensors")) or not (Path(directory) / "tokenizer.json").is_file():
        return f"the model files in {directory} are incomplete"
    return None


def ensure_demo_model(cfg: Config, *, corpus=None) -> Path:
    """`cfg.demo_model.cache_dir`, holding a current demo model (built now when missing or stale).

    `corpus` replaces the generated corpus when a build is needed (tests use a stand-in).
    """
    demo = cfg.demo_model
    reason = staleness(demo.cache_dir, build_identity(demo))
    if reason is not None:
        logger.warning("building the demo model (%s); this takes up to %d s, or run "
                       "`clinical-rlhf build-demo-model` ahead of time", reason, demo.max_build_seconds)
        # The build seeds itself and uses every core; the run that asked for it must go on with
        # its own seed and thread count, or its numbers would depend on whether a build happened.
        with preserved_random_state():
            build_demo_model(cfg, corpus=corpus)
    return Path(demo.cache_dir)


def _training_texts(corpus) -> list[str]:
    return [f"{example.prompt}\n{example.answer}" for example in corpus.train]


def _new_model(demo: DemoModelConfig, tokenizer):
    from transformers import AutoModelForCausalLM

    config = architecture_config(
        demo.architecture, vocab_size=len(tokenizer), hidden=demo.n_embd, layers=demo.n_layer,
        heads=demo.n_head, context_length=demo.context_length, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return AutoModelForCausalLM.from_config(config)


def build_demo_model(cfg: Config, *, corpus=None, progress: Callable[[int, int, float], None] | None = None,
                     on_phase: Callable[[str], None] | None = None) -> BuildReport:
    """Train the tokenizer and SFT the demo model on the corpus; write it to `demo_model.cache_dir`.

    `progress(step, total_steps, loss)` is called after every optimizer step, `on_phase(text)`
    when a stage starts. The whole build, corpus generation included, keeps to
    `demo_model.max_build_seconds`: SFT stops at 90% of it, leaving the rest for evaluation,
    sampling and saving.
    """
    demo, entry, phase = cfg.demo_model, get_model_entry(DEMO_ID), on_phase or (lambda text: None)
    started = time.monotonic()
    torch.set_num_threads(available_cpu_cores())
    seed_everything(demo.seed)
    if corpus is None:
        phase(f"generating the clinical corpus ({demo.corpus_size} pairs)")
        corpus = load_corpus(demo)
    phase(f"training a {demo.vocab_size}-token byte-level BPE tokenizer on {len(corpus.train)} training pairs")
    tokenizer = train_bpe_tokenizer(_training_texts(corpus), demo.vocab_size, model_max_length=demo.context_length)
    model = _new_model(demo, tokenizer)
    train = encode_examples(tokenizer, entry.format_prompt, corpus.train, demo.context_length)
    heldout = encode_examples(tokenizer, entry.format_prompt, corpus.heldout, demo.context_length)
    phase(f"supervised fine-tuning {sum(p.numel() for p in model.parameters()):,} parameters on answers")
    result = train_sft(model, train, pad_token_id=tokenizer.pad_token_id, epochs=demo.sft_epochs,
                       batch_size=demo.sft_batch_size, learning_rate=demo.sft_learning_rate, seed=demo.seed,
                       deadline=started + demo.max_build_seconds * 0.9, progress=progress)
    if result.stopped_early:
        logger.warning("demo model SFT stopped after %d of %d steps: demo_model.max_build_seconds=%d reached",
                       result.steps, result.total_steps, demo.max_build_seconds)
    phase("evaluating on the held-out split and sampling answers")
    report = BuildReport(
        directory=str(demo.cache_dir), parameters=sum(p.numel() for p in model.parameters()),
        seconds=0.0, steps=result.steps, total_steps=result.total_steps, final_loss=result.final_loss,
        heldout_loss=evaluate_answer_loss(model, heldout, pad_token_id=tokenizer.pad_token_id),
        stopped_early=result.stopped_early,
        samples=sample_answers(model, tokenizer, entry, pick_sample_prompts(corpus.heldout), seed=demo.seed))
    report.seconds = time.monotonic() - started
    _save_atomically(Path(demo.cache_dir), model, tokenizer, build_identity(demo), report,
                     corpus_record={"sha256": corpus_sha256(corpus), "train": len(corpus.train),
                                    "heldout": len(corpus.heldout), "seed": demo.seed})
    return report


def pick_sample_prompts(heldout: Sequence, count: int = 4) -> list[str]:
    """Up to `count` held-out prompts, one per category first, so the samples show range."""
    chosen, seen = [], set()
    for example in heldout:
        category = getattr(example, "category", None)
        if category not in seen:
            seen.add(category)
            chosen.append(example.prompt)
        if len(chosen) == count:
            return chosen
    extra = [e.prompt for e in heldout if e.prompt not in chosen]
    return chosen + extra[:count - len(chosen)]


def sample_answers(model, tokenizer, entry, prompts: Sequence[str], *, seed: int,
                   max_new_tokens: int = 64) -> list[tuple[str, str]]:
    """Sample one answer per prompt at the entry's default temperature (seeded)."""
    if not prompts:
        return []
    batch = tokenizer([entry.format_prompt(p) for p in prompts], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    torch.manual_seed(seed)
    with torch.no_grad():
        output = model.generate(**batch, do_sample=True, temperature=entry.default_temperature, top_p=1.0,
                                max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=tokenizer.eos_token_id)
    answers = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [(prompt, answer.strip()) for prompt, answer in zip(prompts, answers)]


def _save_atomically(directory: Path, model, tokenizer, identity: dict, report: BuildReport,
                     corpus_record: dict) -> None:
    """Write next to `directory`, then swap it in: readers see the old model or the new one, never half."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)

    with progress_bars_off():
        model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    manifest = {"identity": identity, "corpus": corpus_record, "report": asdict(report)}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    retired = directory.parent / f".{directory.name}.old-{os.getpid()}"
    if directory.exists():
        directory.rename(retired)
    staging.rename(directory)
    shutil.rmtree(retired, ignore_errors=True)
