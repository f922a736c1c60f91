"""Registry of known medical causal LMs: where they live, what they are, how to prompt them.

Facts (Hub id, parameter count, context length, license) are taken from each model's
published card or config and cited in `docs/models.md`. Parameter counts are exact counts
of the published architecture (tests rebuild the architectures on the meta device and
count), except where noted. Memory figures are never typed in: `models.memory` derives
them from the parameter count.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from clinical_rlhf.errors import ModelNotFoundError

# LoRA targets per architecture family: every linear projection of attention and MLP.
# Adapting all of them (not only q/v) is what QLoRA found necessary to match full
# fine-tuning (Dettmers et al. 2023, section 4).
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    # GPT-2 fuses q/k/v into one Conv1D `c_attn`; `c_proj` names both the attention output
    # and the MLP output projection, `c_fc` the MLP input.
    "gpt2": ("c_attn", "c_proj", "c_fc"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "biogpt": ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"),
}

SAFETY_SYSTEM_PROMPT = (
    "You are a careful clinical assistant. Answer accurately and concisely, say when you are "
    "unsure, and tell the patient to seek urgent care when the symptoms call for it."
)
"""System turn of the chat templates (written for this project, not taken from a card)."""

# Prompt formats. `{prompt}` is the user's text. BOS is not written here: each model's
# tokenizer adds its own when the text is encoded.
QUESTION_ANSWER = "Question: {prompt}\nAnswer:"
"""Plain continuation format for base (not instruction-tuned) language models."""

MEDALPACA = "Question: {prompt}\n\nAnswer: "
"""Format of the MedAlpaca card's usage example (its `Context:` block left out)."""

ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{prompt}\n\n### Response:\n"
)
"""Stanford Alpaca instruction format, used by PMC-LLaMA's instruction tuning."""

MISTRAL_INSTRUCT = "[INST] {prompt} [/INST]"
"""Mistral-7B-Instruct format; BioMistral continued pre-training from that model."""

LLAMA3_CHAT = (
    "<|start_header_id|>system<|end_header_id|>\n\n" + SAFETY_SYSTEM_PROMPT + "<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n"
)
"""Llama-3 chat format (OpenBioLLM and Med42-v2 are Llama-3 fine-tunes)."""

DEMO_TEMPLATE = "Patient question: {prompt}\nClinician answer:"
"""Format of the local demo model: SFT and PPO rollouts both use it."""


@dataclass(frozen=True)
class ModelEntry:
    """One known model. Immutable: the registry is shared by every part of the system."""

    id: str
    """Registry id used in configs (`model.name`), lower-case."""
    hub_id: str | None
    """Hugging Face Hub repository; `None` for the locally built demo model."""
    family: str
    """Architecture family (transformers `model_type`): gpt2, llama, mistral, biogpt."""
    nominal_size: str
    """Size as the card states it, e.g. "7B"."""
    parameters: int
    """Parameter count, used for the memory estimates."""
    embedding_parameters: int
    """Parameters of the input embedding and LM head (vocab × hidden, twice when untied).
    Quantization leaves them unquantized and the k-bit training preparation keeps them in
    fp32 (fp32 logits keep PPO's log-probs exact), so the memory estimate counts them apart."""
    context_length: int
    """Maximum tokens (prompt + answer) the model was trained on."""
    license: str
    """License identifier as on the card."""
    domain: str
    """What the model was trained or tuned on."""
    best_use: str
    """What it is good for in this system."""
    prompt_template: str
    """Format string with a `{prompt}` field."""
    default_temperature: float
    """Sampling temperature when `training.ppo.temperature` is unset."""
    gated: bool = False
    """The Hub repository requires accepting terms (and `hf auth login`) before download."""
    note: str = ""
    """Anything a user should know before choosing it."""

    @property
    def lora_target_modules(self) -> tuple[str, ...]:
        """Module names that receive LoRA adapters in this architecture."""
        return LORA_TARGETS[self.family]

    @property
    def size_label(self) -> str:
        """Human size, e.g. `6.74B` from the parameter count."""
        if self.parameters >= 1e9:
            return f"{self.parameters / 1e9:.2f}B"
        return f"{self.parameters / 1e6:.1f}M"

    def format_prompt(self, user_text: str) -> str:
        """The user's text placed in this model's prompt template."""
        return self.prompt_template.replace("{prompt}", user_text.strip())


# Shared parameter counts of the base architectures (exact, from their configs).
_LLAMA2_7B = 6_738_415_616
_LLAMA_13B = 13_015_864_320
_LLAMA2_70B = 68_976_648_192
_LLAMA3_8B = 8_030_261_248
_LLAMA3_70B = 70_553_706_496
_MISTRAL_7B = 7_241_732_096
# Input embedding + untied LM head: vocab × hidden × 2.
_LLAMA2_EMBED = 32_000 * 4096 * 2
_MISTRAL_7B_EMBED = 32_000 * 4096 * 2
_LLAMA_13B_EMBED = 32_000 * 5120 * 2
_LLAMA2_70B_EMBED = 32_000 * 8192 * 2
_LLAMA3_8B_EMBED = 128_256 * 4096 * 2
_LLAMA3_70B_EMBED = 128_256 * 8192 * 2

_ENTRIES: tuple[ModelEntry, ...] = (
    ModelEntry(
        id="clinical-demo", hub_id=None, family="gpt2", nominal_size="~1M",
        # With the default `demo_model` settings (vocab 2048, 4 layers × 128 hidden, 256 positions).
        parameters=1_088_256,
        embedding_parameters=262_144, context_length=256, license="Apache-2.0 (this project)",
        domain="synthetic clinical Q&A generated from the project's knowledge base",
        best_use="offline demo, CI and tests: trains on a laptop CPU in minutes",
        prompt_template=DEMO_TEMPLATE, default_temperature=0.7,
        note="built locally by `clinical-rlhf build-demo-model`; size follows `demo_model.*`",
    ),
    ModelEntry(
        id="biogpt", hub_id="microsoft/biogpt", family="biogpt", nominal_size="347M",
        parameters=346_763_264,
        embedding_parameters=43_401_216, context_length=1024, license="MIT",
        domain="15M PubMed abstracts (pre-trained from scratch)",
        best_use="biomedical text generation and relation extraction; small enough for CPU",
        prompt_template=QUESTION_ANSWER, default_temperature=0.8,
        note="base LM, not instruction-tuned: expect literature-style continuations",
    ),
    ModelEntry(
        id="biogpt-large", hub_id="microsoft/BioGPT-Large", family="biogpt", nominal_size="1.5B",
        parameters=1_571_188_800,
        embedding_parameters=92_347_200, context_length=2048, license="MIT",
        domain="PubMed abstracts (pre-trained from scratch)",
        best_use="biomedical QA (PubMedQA) and literature-grounded generation on one small GPU",
        prompt_template=QUESTION_ANSWER, default_temperature=0.8,
    ),
    ModelEntry(
        id="biomedlm", hub_id="stanford-crfm/BioMedLM", family="gpt2", nominal_size="2.7B",
        parameters=2_700_000_000,
        embedding_parameters=73_973_760, context_length=1024, license="bigscience-bloom-rail-1.0",
        domain="PubMed abstracts and papers from The Pile",
        best_use="biomedical QA research (MedQA); GPT-2 architecture, easy to fine-tune",
        prompt_template=QUESTION_ANSWER, default_temperature=0.8,
        note="parameter count is the card's figure; the card limits use to research",
    ),
    ModelEntry(
        id="biomistral-7b", hub_id="BioMistral/BioMistral-7B", family="mistral", nominal_size="7B",
        parameters=_MISTRAL_7B,
        embedding_parameters=_MISTRAL_7B_EMBED, context_length=2048, license="Apache-2.0",
        domain="Mistral-7B-Instruct-v0.1 further pre-trained on PubMed Central Open Access",
        best_use="the production default: permissive license, strong medical QA for its size",
        prompt_template=MISTRAL_INSTRUCT, default_temperature=0.7,
        note="context is the further-pre-training sequence length; the config allows more",
    ),
    ModelEntry(
        id="meditron-7b", hub_id="epfl-llm/meditron-7b", family="llama", nominal_size="7B",
        parameters=_LLAMA2_7B,
        embedding_parameters=_LLAMA2_EMBED, context_length=2048, license="Llama 2 Community License",
        domain="Llama-2-7B continued pre-training on PubMed, clinical guidelines, RedPajama",
        best_use="guideline-aware medical QA, differential diagnosis support (research)",
        prompt_template=QUESTION_ANSWER, default_temperature=0.7, gated=True,
    ),
    ModelEntry(
        id="meditron-70b", hub_id="epfl-llm/meditron-70b", family="llama", nominal_size="70B",
        parameters=_LLAMA2_70B,
        embedding_parameters=_LLAMA2_70B_EMBED, context_length=4096, license="Llama 2 Community License",
        domain="Llama-2-70B continued pre-training on PubMed, clinical guidelines, RedPajama",
        best_use="highest-quality open guideline-grounded base; needs 4-bit on one 80 GB GPU",
        prompt_template=QUESTION_ANSWER, default_temperature=0.7, gated=True,
    ),
    ModelEntry(
        id="openbiollm-8b", hub_id="aaditya/Llama3-OpenBioLLM-8B", family="llama", nominal_size="8B",
        parameters=_LLAMA3_8B,
        embedding_parameters=_LLAMA3_8B_EMBED, context_length=8192, license="llama3",
        domain="Llama-3-8B fine-tuned on biomedical instructions with DPO",
        best_use="chat-style clinical answers with an 8k context on one 24 GB GPU",
        prompt_template=LLAMA3_CHAT, default_temperature=0.7,
    ),
    ModelEntry(
        id="openbiollm-70b", hub_id="aaditya/Llama3-OpenBioLLM-70B", family="llama", nominal_size="70B",
        parameters=_LLAMA3_70B,
        embedding_parameters=_LLAMA3_70B_EMBED, context_length=8192, license="llama3",
        domain="Llama-3-70B-Instruct fine-tuned on biomedical instructions with DPO",
        best_use="strongest chat model in the registry; multi-GPU or 4-bit on 80 GB",
        prompt_template=LLAMA3_CHAT, default_temperature=0.7,
    ),
    ModelEntry(
        id="medalpaca-7b", hub_id="medalpaca/medalpaca-7b", family="llama", nominal_size="7B",
        parameters=_LLAMA2_7B,
        embedding_parameters=_LLAMA2_EMBED, context_length=2048, license="cc",
        domain="LLaMA-7B fine-tuned on medical flashcards, WikiDoc, StackExchange, ChatDoctor",
        best_use="short medical question answering and dialogue baselines",
        prompt_template=MEDALPACA, default_temperature=0.7,
        note="LLaMA-1 base: the original LLaMA license terms also apply",
    ),
    ModelEntry(
        id="medalpaca-13b", hub_id="medalpaca/medalpaca-13b", family="llama", nominal_size="13B",
        parameters=_LLAMA_13B,
        embedding_parameters=_LLAMA_13B_EMBED, context_length=2048, license="cc",
        domain="LLaMA-13B fine-tuned on medical flashcards, WikiDoc, StackExchange, ChatDoctor",
        best_use="a stronger MedAlpaca when one 24-40 GB GPU is available",
        prompt_template=MEDALPACA, default_temperature=0.7,
        note="LLaMA-1 base: the original LLaMA license terms also apply",
    ),
    ModelEntry(
        id="pmc-llama-13b", hub_id="axiong/PMC_LLaMA_13B", family="llama", nominal_size="13B",
        parameters=_LLAMA_13B,
        embedding_parameters=_LLAMA_13B_EMBED, context_length=2048, license="openrail",
        domain="LLaMA-13B pre-trained on 4.8M PubMed Central papers and medical books, "
               "then instruction-tuned",
        best_use="medical exam-style QA and instruction following",
        prompt_template=ALPACA, default_temperature=0.7,
    ),
    ModelEntry(
        id="llama3-med42-8b", hub_id="m42-health/Llama3-Med42-8B", family="llama", nominal_size="8B",
        parameters=_LLAMA3_8B,
        embedding_parameters=_LLAMA3_8B_EMBED, context_length=8192, license="llama3",
        domain="Llama-3-8B-Instruct tuned on ~1B tokens of medical flashcards, exams, dialogue",
        best_use="clinically aligned chat answers; a good 8B starting point for safety RLHF",
        prompt_template=LLAMA3_CHAT, default_temperature=0.7, gated=True,
    ),
)

_BY_ID: dict[str, ModelEntry] = {entry.id: entry for entry in _ENTRIES}


def list_model_entries() -> tuple[ModelEntry, ...]:
    """Every registered model, the demo model first."""
    return _ENTRIES


def get_model_entry(model_id: str) -> ModelEntry:
    """The entry registered as `model_id` (case-insensitive; a Hub id is accepted too).

    Raises ModelNotFoundError naming the closest registered ids.
    """
    key = model_id.strip().lower()
    if key in _BY_ID:
        return _BY_ID[key]
    for entry in _ENTRIES:
        if entry.hub_id and entry.hub_id.lower() == key:
            return entry
    candidates = {name: name for name in _BY_ID}
    candidates.update({entry.hub_id.lower(): entry.hub_id for entry in _ENTRIES if entry.hub_id})
    close = [candidates[c] for c in difflib.get_close_matches(key, list(candidates), n=3, cutoff=0.5)]
    hint = f"did you mean {', '.join(f'`{c}`' for c in close)}? " if close else ""
    raise ModelNotFoundError(
        f"unknown model `{model_id}`; {hint}`clinical-rlhf list-models` lists the registered ids, "
        f"or set model.path to a local checkpoint directory"
    )
