"""MC-dropout and sampling uncertainty on tiny locally built models (GPT-2 has dropout, Llama none)."""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from clinical_rlhf.reward import estimate_uncertainty  # noqa: E402
from clinical_rlhf.reward.uncertainty_estimation import (  # noqa: E402
    estimate_uncertainty_with_samples,
    has_dropout,
    mc_dropout_dispersion,
    resolve_method,
)

PROMPTS = ["What is the maximum daily dose of paracetamol?", "I have chest pain, what should I do?"]
ANSWERS = ["Adults should not take more than four grams of paracetamol.", "Call emergency services now."]


def load(directory):
    model = transformers.AutoModelForCausalLM.from_pretrained(directory).eval()
    return model, transformers.AutoTokenizer.from_pretrained(directory)


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2_dir):
    return load(tiny_gpt2_dir)


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load(tiny_llama_dir)


def test_method_follows_the_architecture(gpt2, llama):
    assert has_dropout(gpt2[0]) and resolve_method(gpt2[0], "auto") == "mc_dropout"
    assert not has_dropout(llama[0]) and resolve_method(llama[0], "auto") == "sampling"
    with pytest.raises(ValueError, match="no"):
        resolve_method(llama[0], "mc_dropout")


def test_mc_dropout_dispersion_is_positive_bounded_reproducible_and_restores_modes(gpt2):
    model, tokenizer = gpt2
    first = estimate_uncertainty(model, tokenizer, PROMPTS, ANSWERS, n_samples=4, method="mc_dropout")
    again = estimate_uncertainty(model, tokenizer, PROMPTS, ANSWERS, n_samples=4, method="mc_dropout")
    assert first == again and all(0.0 < u < 1.0 for u in first)
    assert not any(m.training for m in model.modules())


def test_mc_dropout_matches_a_naive_per_pass_computation(gpt2):
    model, tokenizer = gpt2
    prompt, answer = PROMPTS[0], ANSWERS[0]
    batched = mc_dropout_dispersion(model, tokenizer, [prompt], [answer], n_samples=3, micro_batch_size=1, seed=5)
    p_ids = tokenizer(prompt)["input_ids"]
    ids = torch.tensor([p_ids + tokenizer(answer, add_special_tokens=False)["input_ids"]])
    passes = []
    with torch.random.fork_rng():
        torch.manual_seed(5)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.train()
        with torch.no_grad():
            for _ in range(3):
                logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
                passes.append(logp.gather(1, ids[0, 1:, None]).squeeze(1)[len(p_ids) - 1:])
        model.eval()
    naive = torch.stack(passes).std(dim=0).mean().item()
    assert batched[0] == pytest.approx(naive, rel=1e-4)


def test_forward_passes_are_batched_and_bounded(gpt2):
    model, tokenizer = gpt2
    calls = []
    handle = model.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        mc_dropout_dispersion(model, tokenizer, PROMPTS * 3, ANSWERS * 3, n_samples=4, micro_batch_size=8)
    finally:
        handle.remove()
    assert len(calls) == 3   # 6 answers x 4 passes = 24 sequences in chunks of 8


def test_without_dropout_there_is_no_dispersion(tiny_gpt2_dir):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        tiny_gpt2_dir, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    assert mc_dropout_dispersion(model, tokenizer, PROMPTS, ANSWERS, n_samples=3) == pytest.approx([0.0, 0.0], abs=1e-6)


def test_sampling_method_on_llama_returns_samples_and_disagreement(llama):
    model, tokenizer = llama
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        values, samples = estimate_uncertainty_with_samples(model, tokenizer, PROMPTS, ANSWERS, n_samples=3,
                                                            max_new_tokens=8)
        assert tokenizer.padding_side == "right"   # restored after left-padded generation
    finally:
        tokenizer.padding_side = side
    assert len(samples) == 2 and all(len(s) == 3 for s in samples)
    assert all(0.0 <= u <= 1.0 for u in values)
    # a random tiny model's samples share little with the answers: high disagreement
    assert min(values) > 0.5


def test_guards_on_arguments(gpt2):
    model, tokenizer = gpt2
    with pytest.raises(ValueError, match="n_samples"):
        mc_dropout_dispersion(model, tokenizer, PROMPTS, ANSWERS, n_samples=1)
    with pytest.raises(ValueError, match="differ in length"):
        estimate_uncertainty(model, tokenizer, PROMPTS, ANSWERS[:1])
