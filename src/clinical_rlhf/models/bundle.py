"""`PolicyBundle`: everything PPO needs from the model side, behind one small interface.

The trainer never asks whether LoRA is on, whether the critic shares the backbone or whether
the base is quantized: `forward` gives logits and values, `reference()` gives the reference
policy, `trainable_state_dict()` is what a checkpoint stores.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from clinical_rlhf.errors import CheckpointError
from clinical_rlhf.models.kernels import fused_lora, merged_lora
from clinical_rlhf.models.registry import ModelEntry
from clinical_rlhf.models.sharded import full_tensor, shard_like
from clinical_rlhf.models.value_head import ValueHead, ValueModel


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding: [0,0,1,1] mask -> [0,0,0,1].

    `generate` derives positions this way; passing the same ids in the training forward keeps
    the log-probs of a left-padded rollout identical to those computed while sampling
    (GPT-2 and BioGPT use absolute positions, so a shift would change every logit).
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class LoadInfo:
    """How the bundle was actually built (after every fallback), for logs and tests."""

    source: str
    """Hub id or local directory the weights came from."""
    precision: str
    """fp32, fp16, bf16, int8 or nf4: what the base weights really are."""
    attn_implementation: str
    """Attention kernel in use."""
    load_seconds: float
    """Wall time of `build_policy`."""


class PolicyBundle:
    """Policy, tokenizer, critic and reference policy of one model. Built by `build_policy`.

    Returned in eval mode (dropout off), as transformers loads models: PPO's probability
    ratios need the same log-probs at rollout and update time. `train()` switches dropout on.
    """

    def __init__(self, *, model: nn.Module, tokenizer, entry: ModelEntry, device: torch.device,
                 value_head: ValueHead, value_model: ValueModel | None, reference_model: nn.Module | None,
                 uses_lora: bool, temperature: float, info: LoadInfo):
        self.model = model
        """The causal LM (a peft model when LoRA is on)."""
        self.tokenizer = tokenizer
        """Pad token set, `padding_side == "left"` for batched generation."""
        self.entry = entry
        """Registry entry: prompt template, default temperature, LoRA targets, ..."""
        self.device = device
        self.value_head = value_head
        """The linear critic head (inside `value_model` when the critic is separate)."""
        self.value_model = value_model
        """The separate critic, or None when the value head shares the policy backbone."""
        self.uses_lora = uses_lora
        self.temperature = temperature
        """Sampling temperature: `training.ppo.temperature`, else the registry default."""
        self.info = info
        self._policy_model = model
        self._reference_model = reference_model
        self._in_reference = False
        causal = model.get_base_model() if hasattr(model, "get_base_model") else model
        self._keeps_logits = "logits_to_keep" in inspect.signature(causal.forward).parameters

    # ------------------------------------------------------------------ forward passes

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, last: int | None = None) -> torch.Tensor:
        """[B, T, V] logits of `self.model` (the reference policy inside `reference()`).

        `last`: logits of the last `last` positions only, `[B, last, V]` (the answer's: the LM
        head, the largest matrix of a small model, then never runs on the prompt)."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask,
                          position_ids=position_ids_from_mask(attention_mask), use_cache=False,
                          **self._keep(last)).logits[:, -(last or 0):]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                last: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits [B, T, V] and values [B, T], adapter on (`last`: of the last `last`
        positions only, as in `logits`).

        Shared critic: one pass, values read from the last hidden state (the one the LM head
        reads). Separate critic: a second pass through the value model. LoRA layers add their
        update inside the low-rank GEMM (`kernels.fused_lora`).
        """
        if self._in_reference:
            raise RuntimeError("bundle.forward() is the trainable policy; call it outside bundle.reference()")
        position_ids = position_ids_from_mask(attention_mask)
        tail = slice(-(last or 0), None)
        if self.value_model is None:
            with self._lm_head_inputs() as states, fused_lora(self.model):
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                    use_cache=False, **self._keep(last)).logits
            return logits[:, tail], self.value_head(states[0][:, tail])
        with fused_lora(self.model):
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                use_cache=False, **self._keep(last)).logits
        with fused_lora(self.value_model):
            values = self.value_model(input_ids, attention_mask, position_ids)
        return logits[:, tail], values[:, tail]

    @torch.no_grad()
    def sample(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               **sampling) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample continuations (`self.model.generate(**sampling)`, adapter on) and keep
        what sampling computed anyway: (sequences [B, P + T], logits [B, T, V], values [B, T]).

        `logits[:, t]` are the raw logits (before temperature and top-p) that chose answer token
        `t`; `values[:, t]` is the critic's value of the same state. Shared critic: the value head
        reads the hidden states the LM head read while sampling (a forward pre-hook), so no
        second pass runs. Separate critic: one pass of the value model over the sequences.
        Each LoRA layer runs with its update merged into the base matrix (`kernels.merged_lora`;
        the base weights are not written).
        Naive equivalent, equal up to float rounding (cached vs. full attention):
            logits, values = self.forward(sequences, mask, last=T + 1); logits[:, :T], values[:, :T]
        with `mask` the prompt's followed by ones (real answer tokens never attend to later ones).
        Inside `reference()` it samples the reference policy (an evaluation's baseline), and the
        logits and values it keeps are the reference's.
        """
        # LoRA layers as one merged product each (`kernels.merged_lora`): the weights are fixed
        # for the whole sampling, so the merge is built once rather than the low-rank path per token
        with self._lm_head_inputs() as states, merged_lora(self.model):
            # no chunked prefill, whatever the checkpoint's generation config says: the LM head
            # must run once per sampled token for the states to line up with the tokens
            out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, output_logits=True,
                                      return_dict_in_generate=True, prefill_chunk_size=None, **sampling)
        sequences = out.sequences
        steps = sequences.shape[1] - input_ids.shape[1]
        step_logits = out.logits[:steps]
        del out  # it holds the KV cache: free it before the logits are stacked
        logits = torch.stack(step_logits, dim=1)
        del step_logits
        if self.value_model is None:
            # one state per forward; ranks that finished early under `synced_gpus` add more after these
            values = self.value_head(torch.stack([state[:, -1] for state in states[:steps]], dim=1))
        else:
            mask = torch.cat([attention_mask, attention_mask.new_ones(attention_mask.shape[0], steps)], dim=1)
            values = self.value_model(sequences, mask, position_ids_from_mask(mask))[:, -steps - 1:-1]
        return sequences, logits, values.float()

    @contextlib.contextmanager
    def _lm_head_inputs(self) -> Iterator[list[torch.Tensor]]:
        """The hidden states the LM head reads within the block, one per call: the last layer's
        output after the final norm, the state the shared value head reads too. A forward
        pre-hook costs nothing; `output_hidden_states=True` would hand back every layer's, at a
        few percent of a small model's forward and backward (`value-hook` in
        benchmarks/ppo_update_parts.py)."""
        states: list[torch.Tensor] = []
        hook = self.model.get_output_embeddings().register_forward_pre_hook(
            lambda _, args: states.append(args[0]))
        try:
            yield states
        finally:
            hook.remove()

    def _keep(self, last: int | None) -> dict[str, int]:
        """transformers' `logits_to_keep` where the model's forward takes it (the slice after the
        pass keeps the result the same for one that does not)."""
        return {"logits_to_keep": last} if last and self._keeps_logits else {}

    @contextlib.contextmanager
    def reference(self) -> Iterator[PolicyBundle]:
        """Within the block `self.model` is the reference policy, under `torch.no_grad()`.

        LoRA: the same model with the adapter disabled (no second copy in memory).
        Without LoRA: the frozen copy taken when the bundle was built.
        """
        if self._in_reference:
            raise RuntimeError("bundle.reference() blocks cannot be nested")
        self._in_reference = True
        try:
            with torch.no_grad():
                if self.uses_lora:
                    with self.model.disable_adapter():
                        yield self
                else:
                    self.model = self._reference_model
                    try:
                        yield self
                    finally:
                        self.model = self._policy_model
        finally:
            self._in_reference = False

    # ------------------------------------------------------------------ training state

    def _trainable_modules(self) -> dict[str, nn.Module]:
        modules: dict[str, nn.Module] = {"policy": self._policy_model}
        if self.value_model is None:
            modules["value_head"] = self.value_head
        else:
            modules["value_model"] = self.value_model
        return modules

    def named_trainable_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """(checkpoint key, parameter) of every trainable weight, in `trainable_parameters()` order."""
        for prefix, module in self._trainable_modules().items():
            for name, parameter in module.named_parameters():
                if parameter.requires_grad:
                    yield f"{prefix}.{name}", parameter

    def trainable_parameters(self) -> list[nn.Parameter]:
        """LoRA weights (all policy weights without LoRA) + value head (+ value model's trainables)."""
        return [parameter for _, parameter in self.named_trainable_parameters()]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Detached CPU copies of every trainable tensor, keyed `policy.*`, `value_head.*`, `value_model.*`.

        Under FSDP (`rl/sharding.py`) each tensor is gathered whole first, so every rank must call it."""
        return {name: full_tensor(parameter.detach()).to("cpu", copy=True)
                for name, parameter in self.named_trainable_parameters()}

    def load_trainable_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Restore what `trainable_state_dict` saved. Strict: keys and shapes must match exactly.
        Under FSDP each rank keeps its shard of the full tensor (every rank must call it)."""
        own = dict(self.named_trainable_parameters())
        self.check_trainable_state_dict(state_dict, {name: tuple(p.shape) for name, p in own.items()})
        for name, parameter in own.items():
            value = shard_like(state_dict[name].to(device=parameter.device, dtype=parameter.dtype), parameter)
            with torch.no_grad():
                parameter.copy_(value)

    @staticmethod
    def check_trainable_state_dict(state_dict: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]) -> None:
        """Raise CheckpointError unless `state_dict` has exactly the keys of `shapes` (this model's
        trainable weights, full shapes) with those shapes."""
        missing = sorted(set(shapes) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(shapes))
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint weights do not match this model: {len(missing)} missing (e.g. {missing[:2]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}); resume with the model and "
                f"model_loading settings the checkpoint was trained with")
        for name, shape in shapes.items():
            if tuple(state_dict[name].shape) != tuple(shape):
                raise CheckpointError(f"checkpoint tensor `{name}` has shape {tuple(state_dict[name].shape)}, the "
                                      f"model expects {tuple(shape)}; was lora_r changed since it was saved?")

    @property
    def reference_copy(self) -> nn.Module | None:
        """The frozen reference model kept without LoRA (None with LoRA: the disabled adapter is
        the reference). Exposed for the sharding strategies, which must partition it too."""
        return self._reference_model

    # ------------------------------------------------------------------ prompts

    def format_prompt(self, user_text: str) -> str:
        """`user_text` in the entry's prompt template (the same format the demo model was SFT'd on)."""
        return self.entry.format_prompt(user_text)

    def train(self, mode: bool = True) -> PolicyBundle:
        """Set train/eval mode on the policy and the critic together."""
        self._policy_model.train(mode)
        self.value_head.train(mode)
        if self.value_model is not None:
            self.value_model.train(mode)
        return self

    def eval(self) -> PolicyBundle:
        return self.train(False)
