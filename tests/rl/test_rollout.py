"""Rollout on the tiny models: left padding, EOS handling, the log-probs and values kept from sampling."""

import pytest
import torch

from clinical_rlhf.models import build_policy
from clinical_rlhf.models.tiny import ARCHITECTURES, tiny_model_config
from clinical_rlhf.rl import rollout as R
from clinical_rlhf.rl.losses import logprobs_of_tokens

from .conftest import PROMPTS_OF_MANY_LENGTHS, perturbed, rollout_with_early_ends


def test_response_mask_stops_after_first_eos():
    ids = torch.tensor([[5, 9, 2, 7, 2], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    mask, ended = R.response_mask_after_eos(ids, {2})
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert ended.tolist() == [True, False, True]


def test_generate_left_pads_prompts_and_right_pads_answers(bundle):
    torch.manual_seed(0)
    rollout = R.generate(bundle, PROMPTS_OF_MANY_LENGTHS, max_new_tokens=12, temperature=0.7, top_p=1.0, max_prompt_tokens=64)
    pad = bundle.tokenizer.pad_token_id
    assert rollout.query_mask[:, -1].all()  # every prompt ends at the last column
    assert (rollout.query_ids[rollout.query_mask == 0] == pad).all()
    assert (rollout.response_ids[rollout.response_mask == 0] == pad).all()
    assert rollout.response_ids.shape[1] <= 12
    lengths = rollout.response_mask.sum(1)
    for row, ended in enumerate(rollout.ended_with_eos.tolist()):
        last = int(lengths[row]) - 1
        assert (rollout.response_ids[row, last].item() == bundle.tokenizer.eos_token_id) == ended
    assert len(rollout.responses) == 3 and all(isinstance(text, str) for text in rollout.responses)


def test_sampling_log_probs_are_those_generate_sampled_from(bundle):
    """The rollout's old log-probs are log softmax(raw logits / T) of the tokens drawn: the
    distribution `generate` sampled from after temperature (top-p only cuts its tail)."""
    torch.manual_seed(1)
    query_ids, query_mask = R.encode_prompts(bundle, PROMPTS_OF_MANY_LENGTHS, 64)
    out = bundle.model.generate(input_ids=query_ids, attention_mask=query_mask, do_sample=True,
                                temperature=0.7, top_k=0, max_new_tokens=6,
                                output_scores=True, return_dict_in_generate=True,
                                pad_token_id=bundle.tokenizer.pad_token_id)
    sampled = logprobs_of_tokens(torch.stack(out.scores, dim=1), out.sequences[:, query_ids.shape[1]:])
    torch.manual_seed(1)
    rollout = R.generate(bundle, PROMPTS_OF_MANY_LENGTHS, max_new_tokens=6, temperature=0.7, top_p=1.0, max_prompt_tokens=64)
    torch.testing.assert_close(rollout.logprobs, sampled * rollout.response_mask, atol=1e-6, rtol=0)
    R.score(bundle, rollout, temperature=0.7, micro_batch_size=2)
    # a fresh LoRA adapter is the identity: reference and policy agree
    torch.testing.assert_close(rollout.ref_logprobs, rollout.logprobs, atol=1e-5, rtol=0)
    assert rollout.values.shape == rollout.response_ids.shape


LAYOUTS = {"lora": {}, "separate-critic": {"shared_value_base": False}, "no-lora": {"use_lora": False},
           "int8": {"load_in_8bit": True}, "nf4": {"load_in_4bit": True, "bnb_4bit_compute_dtype": "float32"}}


@pytest.mark.parametrize(("architecture", "layout"),
                         [(name, "lora") for name in ARCHITECTURES] + [("gpt2", name) for name in LAYOUTS if name != "lora"])
def test_sampling_log_probs_and_values_equal_the_update_pass(tiny_model_dir, architecture, layout):
    """What sampling kept (log-probs from its logits, values from the hidden states its LM head
    read) equals what the update's pass computes on [prompt | answer], on every token of every
    architecture and model layout, in float32 (measured: <= 1.5e-6 apart, cached vs. full
    attention; NF4 bases up to 2.4e-5: bitsandbytes' CPU kernels round differently per shape)."""
    bundle = perturbed(build_policy(tiny_model_config(tiny_model_dir(architecture), model_loading=LAYOUTS[layout])))
    bundle.model.generation_config.prefill_chunk_size = 4  # a checkpoint's chunked prefill must not shift the values
    rollout = rollout_with_early_ends(bundle)
    with torch.no_grad():
        logprobs, values, _ = R.policy_pass(bundle, rollout, temperature=0.7)
    mask = rollout.response_mask
    assert rollout.values.abs().max() > 0.1  # the values are not trivially 0 on both sides
    tolerance = 5e-5 if layout == "nf4" else 1e-5
    torch.testing.assert_close(rollout.logprobs, logprobs * mask, atol=tolerance, rtol=0)
    torch.testing.assert_close(rollout.values, values * mask, atol=tolerance, rtol=0)


def test_sampling_inside_reference_samples_the_reference_policy(bundle):
    """An evaluation's baseline samples with the adapter disabled: the kept log-probs are then the
    reference's, equal to what `score` computes for it."""
    bundle = perturbed(bundle)  # a trained adapter, so that policy and reference differ
    torch.manual_seed(4)
    with bundle.reference():
        rollout = R.generate(bundle, PROMPTS_OF_MANY_LENGTHS, max_new_tokens=6, temperature=0.7, top_p=1.0,
                             max_prompt_tokens=64)
    kept = rollout.logprobs.clone()
    R.score(bundle, rollout, temperature=0.7, micro_batch_size=2)
    torch.testing.assert_close(kept, rollout.ref_logprobs, atol=1e-5, rtol=0)
    with torch.no_grad():
        policy, _, _ = R.policy_pass(bundle, rollout, temperature=0.7)
    assert (policy * rollout.response_mask - kept).abs().max() > 1e-3


def test_concat_rollouts_pads_both_sides(bundle):
    torch.manual_seed(2)
    parts = [R.generate(bundle, [p], max_new_tokens=steps, temperature=1.0, top_p=1.0, max_prompt_tokens=64)
             for p, steps in zip(PROMPTS_OF_MANY_LENGTHS[:2], (3, 5))]
    joined = R.concat_rollouts(parts, bundle.tokenizer.pad_token_id)
    assert len(joined) == 2 and joined.prompts == PROMPTS_OF_MANY_LENGTHS[:2]
    assert joined.query_mask[:, -1].all()
    assert joined.response_mask.sum(1).tolist() == [p.response_mask.sum().item() for p in parts]
    for row, part in enumerate(parts):  # the sampling log-probs and values travel with their answer
        width = part.response_ids.shape[1]
        assert torch.equal(joined.logprobs[row, :width], part.logprobs[0])
        assert torch.equal(joined.values[row, :width], part.values[0])
        assert not joined.logprobs[row, width:].any() and not joined.values[row, width:].any()
