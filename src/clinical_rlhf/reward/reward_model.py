"""The learned reward model: a scalar head on the last token of a LoRA-adapted backbone.

    model = build_reward_model(cfg)                       # backbone from the model factory
    scores = model.score(prompts, answers)                # [N] raw Bradley-Terry scores
    save_reward_model(directory, model, cfg, record)      # atomic, checksummed
    model, manifest = load_reward_model(directory)        # verified: checksums and backbone

The backbone is built through the same factory path as the policy (registry entry, local
directory or demo model; quantization and LoRA targets from `model_loading`), with its LM head
dropped; the head is the critic's `ValueHead` (one linear map, float32). A text is scored as the
policy sees it: the prompt in the entry's template, then the answer and EOS, left-padded.

A reward-model directory holds

    reward_model.safetensors   LoRA adapter and head weights
    config.yaml                the resolved config it was trained with (it rebuilds the backbone)
    manifest.json              format, backbone and its fingerprint, score calibration, the
                               held-out report, and the SHA-256 of the two files above

It is written under a temporary name, fsynced and renamed, so it is complete or absent.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from clinical_rlhf.config import Config, config_from_mapping
from clinical_rlhf.conversation import render_question
from clinical_rlhf.durable import fsync_path, sha256_file
from clinical_rlhf.errors import CheckpointError, ConfigError
from clinical_rlhf.models import factory, hardware
from clinical_rlhf.models.bundle import position_ids_from_mask
from clinical_rlhf.models.fingerprint import base_model_fingerprint
from clinical_rlhf.models.registry import (
    ModelEntry,
    get_model_entry,
    list_model_entries,
)
from clinical_rlhf.models.value_head import ValueModel
from clinical_rlhf.reward.preference_losses import last_token_scores

FORMAT = "clinical-rlhf-reward-model"
FORMAT_VERSION = 1
WEIGHTS, CONFIG, MANIFEST = "reward_model.safetensors", "config.yaml", "manifest.json"


def user_text(prompt: str, messages: Sequence[dict] = ()) -> str:
    """The text put in the prompt template: system turns, earlier turns as "User: ..." /
    "Assistant: ..." paragraphs, then `prompt`; how the server renders a chat request
    (`serve/backends/local.py: render_chat`), so a conversation is scored as it is asked."""
    return render_question(prompt, messages)


def backbone_config(cfg: Config) -> Config:
    """`cfg` with `model` pointing at the reward model's backbone and the adapter's r/alpha.

    `reward_model.backbone`: `None` keeps `model`; a registry id replaces `model.name` (and clears
    `model.path`); anything else is a local checkpoint directory (`model.path`)."""
    rm = cfg.reward_model
    model = cfg.model
    if rm.backbone is not None:
        if rm.backbone in {entry.id for entry in list_model_entries()}:
            model = model.model_copy(update={"name": rm.backbone, "path": None})
        elif Path(rm.backbone).expanduser().is_dir():
            model = model.model_copy(update={"path": Path(rm.backbone).expanduser()})
        else:
            raise ConfigError(f"reward_model.backbone {rm.backbone!r} is neither a registry id "
                              f"(`clinical-rlhf list-models`) nor an existing directory; fix the key")
    loading = cfg.model_loading.model_copy(update={"use_lora": True, "lora_r": rm.lora_r, "lora_alpha": rm.lora_alpha})
    return cfg.model_copy(update={"model": model, "model_loading": loading})


class RewardModel(nn.Module):
    """Backbone (LoRA) + scalar head; `forward` gives one score per sequence."""

    def __init__(self, value_model: ValueModel, tokenizer, entry: ModelEntry, device: torch.device,
                 max_length: int, source: str):
        super().__init__()
        self.value_model = value_model
        self.tokenizer = tokenizer
        self.entry = entry
        self.device = device
        self.max_length = max_length
        """Most tokens per sequence: `reward_model.max_length`, capped by the backbone's context."""
        self.source = source
        """Hub id or directory the backbone weights came from."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, T] left- or right-padded ids -> [B] scores (float32) at each row's last real token."""
        values = self.value_model(input_ids, attention_mask, position_ids_from_mask(attention_mask))
        return last_token_scores(values, attention_mask)

    # ------------------------------------------------------------------ text -> tokens

    def encode(self, prompt: str, answer: str, messages: Sequence[dict] = ()) -> tuple[list[int], bool]:
        """Token ids of the templated prompt, the answer and EOS; and whether they were cut.

        A sequence longer than `max_length` keeps the end of its prompt (at most half of the
        length when the answer needs the room) and cuts the answer, EOS kept.
        """
        tokenizer = self.tokenizer
        formatted = self.entry.format_prompt(user_text(prompt, messages))
        prompt_ids = list(tokenizer(formatted)["input_ids"])
        joint = tokenizer(formatted + " " + answer.strip(), add_special_tokens=False)["input_ids"]
        bare = tokenizer(formatted, add_special_tokens=False)["input_ids"]
        # The answer's tokens as they follow the prompt (a tokenizer may merge across the join).
        answer_ids = list(joint[len(bare):]) if joint[:len(bare)] == bare else \
            list(tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"])
        answer_ids.append(tokenizer.eos_token_id)
        limit = self.max_length
        if len(prompt_ids) + len(answer_ids) <= limit:
            return prompt_ids + answer_ids, False
        keep = min(len(prompt_ids), max(limit - len(answer_ids), limit // 2))
        prompt_ids = prompt_ids[len(prompt_ids) - keep:]
        answer_ids = answer_ids[:limit - len(prompt_ids) - 1] + [tokenizer.eos_token_id]
        return prompt_ids + answer_ids, True

    def collate(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded `input_ids` and `attention_mask` on the model's device."""
        width = max(len(ids) for ids in sequences)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids):] = 1
        return input_ids.to(self.device), attention_mask.to(self.device)

    @torch.no_grad()
    def score(self, prompts: Sequence[str], answers: Sequence[str], *, batch_size: int = 16,
              messages: Sequence[Sequence[dict]] | None = None) -> torch.Tensor:
        """[N] raw scores on CPU, in input order. Sequences are batched by length (little padding)."""
        if len(prompts) != len(answers):
            raise ValueError(f"score: {len(prompts)} prompts but {len(answers)} answers")
        encoded = [self.encode(p, a, messages[i] if messages else ())[0]
                   for i, (p, a) in enumerate(zip(prompts, answers))]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        scores = torch.zeros(len(encoded), dtype=torch.float32)
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                scores[chunk] = self(*self.collate([encoded[i] for i in chunk])).float().cpu()
        finally:
            self.train(was_training)
        return scores

    # ------------------------------------------------------------------ weights

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """CPU copies of the adapter and head weights (what a reward-model directory stores)."""
        return {name: p.detach().to("cpu", copy=True) for name, p in self.value_model.named_parameters()
                if p.requires_grad}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor], where: Path) -> None:
        own = {name: p for name, p in self.value_model.named_parameters() if p.requires_grad}
        if set(own) != set(state):
            missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
            raise CheckpointError(f"reward model {where}: its weights do not fit this backbone ({len(missing)} "
                                  f"missing, e.g. {missing[:1]}; {len(unexpected)} unexpected, e.g. "
                                  f"{unexpected[:1]}); retrain it with `clinical-rlhf train-reward`")
        with torch.no_grad():
            for name, parameter in own.items():
                if tuple(state[name].shape) != tuple(parameter.shape):
                    raise CheckpointError(f"reward model {where}: tensor {name} has shape "
                                          f"{tuple(state[name].shape)}, the backbone expects "
                                          f"{tuple(parameter.shape)}; retrain it with `clinical-rlhf train-reward`")
                parameter.copy_(state[name].to(device=parameter.device, dtype=parameter.dtype))


def build_reward_model(cfg: Config) -> RewardModel:
    """A fresh reward model for `cfg` (adapter at zero, head at zero: every score starts at 0)."""
    backbone_cfg = backbone_config(cfg)
    entry = get_model_entry(backbone_cfg.model.name)
    source, is_local = factory.resolve_source(backbone_cfg, entry)
    device = hardware.resolve_device(backbone_cfg.model.device)
    dtype = hardware.resolve_dtype(backbone_cfg.model.dtype, device)
    tokenizer = factory.load_tokenizer(source, backbone_cfg, entry, is_local)
    attn = factory.resolve_attention(source, backbone_cfg, entry, is_local, device, dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.reward_model.seed)
        causal, precision = factory.load_causal_lm(source, backbone_cfg, entry, is_local, device, dtype, attn)
        targets = factory.resolve_lora_targets(backbone_cfg, entry, causal)
        backbone = factory.attach_lora(causal.base_model, backbone_cfg, targets,
                                       precision in ("int8", "nf4", "fp4"), task_type=None)
    value_model = ValueModel(backbone, causal.config.hidden_size).to(device)
    context = getattr(causal.config, "max_position_embeddings", None) or cfg.reward_model.max_length
    return RewardModel(value_model, tokenizer, entry, device, min(cfg.reward_model.max_length, context), source)


# ----------------------------------------------------------------------------- directory


def save_reward_model(directory: str | Path, model: RewardModel, cfg: Config, record: dict[str, Any]) -> Path:
    """Write `directory` atomically (replacing an older one); `record` goes into the manifest."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_file({k: v.contiguous() for k, v in model.trainable_state_dict().items()}, str(staging / WEIGHTS))
    (staging / CONFIG).write_text(cfg.to_yaml(), encoding="utf-8")
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "created": time.time(), **record,
                "sha256": {name: sha256_file(staging / name) for name in (WEIGHTS, CONFIG)}}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    for name in (WEIGHTS, CONFIG, MANIFEST):
        fsync_path(staging / name)
    fsync_path(staging)
    retired = directory.parent / f".{directory.name}.old-{os.getpid()}"
    if directory.exists():
        os.replace(directory, retired)
    os.replace(staging, directory)
    fsync_path(directory.parent)
    shutil.rmtree(retired, ignore_errors=True)
    return directory


def read_manifest(directory: str | Path, key: str = "reward.learned_model") -> dict[str, Any]:
    """The verified manifest of a reward-model directory.

    ConfigError when `directory` is not a reward-model directory at all (the key points at the
    wrong place); CheckpointError when it is one but damaged (a checksum does not match)."""
    directory = Path(directory)
    retrain = "train one with `clinical-rlhf train-reward` and point the key at its output directory"
    if not directory.is_dir():
        raise ConfigError(f"{key} {directory} does not exist; {retrain}")
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"{key} {directory} holds no reward model (no readable {MANIFEST}); {retrain}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{key} {directory} is not a reward-model directory ({MANIFEST} is not a "
                          f"{FORMAT} manifest); {retrain}")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"reward model {directory} has format version {manifest.get('version')}, this "
                              f"version reads {FORMAT_VERSION}; retrain it with `clinical-rlhf train-reward`")
    for name in (WEIGHTS, CONFIG):
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"reward model {directory} is missing {name}; retrain it with "
                                  f"`clinical-rlhf train-reward`")
        if sha256_file(path) != manifest.get("sha256", {}).get(name):
            raise CheckpointError(f"reward model {directory}: {name} does not match its checksum (corrupt); "
                                  f"retrain it with `clinical-rlhf train-reward`")
    return manifest


def load_reward_model(directory: str | Path, *, key: str = "reward.learned_model",
                      device: str | None = None) -> tuple[RewardModel, dict[str, Any]]:
    """Rebuild the backbone the model was trained on, check it is the same one, load the weights.

    The backbone comes from the saved config (its registry id, directory or demo model); its
    fingerprint must equal the one recorded at training, or a CheckpointError says the reward
    model belongs to another backbone. `device` overrides the saved `model.device`.
    Returned in eval mode with every weight frozen.
    """
    directory = Path(directory)
    manifest = read_manifest(directory, key)
    try:
        data = yaml.safe_load((directory / CONFIG).read_text(encoding="utf-8"))
        cfg = config_from_mapping(data, source=str(directory / CONFIG))
    except (ConfigError, ValueError, yaml.YAMLError) as exc:
        raise CheckpointError(f"reward model {directory}: its {CONFIG} does not load with this version "
                              f"({str(exc).splitlines()[0]}); retrain it with `clinical-rlhf train-reward`") from None
    if device is not None:
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": device})})
    model = build_reward_model(cfg)
    fingerprint = base_model_fingerprint(model.value_model)
    if fingerprint != manifest.get("backbone", {}).get("fingerprint"):
        raise CheckpointError(
            f"reward model {directory} was trained on another backbone than the one {model.source} holds now "
            f"(base weights differ from the fingerprint recorded at training); retrain it on this backbone "
            f"with `clinical-rlhf train-reward`")
    try:
        state = load_file(str(directory / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - a checksum-clean file that fails is incompatible
        raise CheckpointError(f"reward model {directory}: {WEIGHTS} cannot be read ({exc})") from None
    model.load_trainable_state_dict(state, directory)
    model.requires_grad_(False)
    model.eval()
    return model, manifest
