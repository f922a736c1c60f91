"""Rollout on the tiny GPT-2: left padding, EOS handling, log-probs that match the sampler."""

import torch

from clinical_rlhf.rl import rollout as R
from clinical_rlhf.rl.losses import logprobs_of_tokens

PROMPTS = ["chest pain and sweating", "a mild headache since this morning after a long flight", "fever"]


def test_response_mask_stops_after_first_eos():
    ids = torch.tensor([[5, 9, 2, 7, 2], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    mask, ended = R.response_mask_after_eos(ids, {2})
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    assert ended.tolist() == [True, False, True]


def test_generate_left_pads_prompts_and_right_pads_answers(bundle):
    torch.manual_seed(0)
    rollout = R.generate(bundle, PROMPTS, max_new_tokens=12, temperature=0.7, top_p=1.0, max_prompt_tokens=64)
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


def test_scoring_pass_reproduces_the_sampling_log_probs(bundle):
    """The log-probs of the scoring pass equal those `generate` sampled from (left padding and
    temperature included): PPO's first ratio is exactly 1."""
    torch.manual_seed(1)
    query_ids, query_mask = R.encode_prompts(bundle, PROMPTS, 64)
    out = bundle.model.generate(input_ids=query_ids, attention_mask=query_mask, do_sample=True,
                                temperature=0.7, top_k=0, max_new_tokens=6,
                                output_scores=True, return_dict_in_generate=True,
                                pad_token_id=bundle.tokenizer.pad_token_id)
    response = out.sequences[:, query_ids.shape[1]:]
    sampled = logprobs_of_tokens(torch.stack(out.scores, dim=1), response)  # scores are already / T
    mask, ended = R.response_mask_after_eos(response, R.eos_token_ids(bundle))
    rollout = R.Rollout(PROMPTS, [""] * 3, query_ids, query_mask, response, mask, ended)
    R.score(bundle, rollout, temperature=0.7, micro_batch_size=2)
    assert torch.allclose(rollout.logprobs, sampled * mask, atol=1e-4)
    # a fresh LoRA adapter is the identity: reference and policy agree
    assert torch.allclose(rollout.ref_logprobs, rollout.logprobs, atol=1e-5)
    assert rollout.values.shape == response.shape


def test_concat_rollouts_pads_both_sides(bundle):
    torch.manual_seed(2)
    parts = [R.generate(bundle, [p], max_new_tokens=5, temperature=1.0, top_p=1.0, max_prompt_tokens=64)
             for p in PROMPTS[:2]]
    joined = R.concat_rollouts(parts, bundle.tokenizer.pad_token_id)
    assert len(joined) == 2 and joined.prompts == PROMPTS[:2]
    assert joined.query_mask[:, -1].all()
    assert joined.response_mask.sum(1).tolist() == [p.response_mask.sum().item() for p in parts]
