"""Preference pairs as tokens: template, prompt masking, truncation, and batched answer log-probs
against a naive unpadded pair-by-pair computation (policy and disabled-adapter reference)."""

import pytest
import torch

from clinical_rlhf.feedback import PreferenceRecord
from clinical_rlhf.rl.preference_batches import (
    collate_pairs,
    conversation_text,
    encode_pair,
    encode_records,
    pair_logprobs,
    reference_logprobs,
)

from .conftest import fresh_bundle

RECORDS = [
    PreferenceRecord("p1", "Chest pain radiating to the left arm, what now?", "Call emergency services now.",
                     "Rest and see if it passes.", "a", "dr-a"),
    PreferenceRecord("p2", "Can I take ibuprofen with warfarin?", "Yes, any dose is fine.",
                     "No: bleeding risk; paracetamol is the safer analgesic, ask your pharmacist.", "b", "dr-b",
                     messages=({"role": "system", "content": "Be careful."},
                               {"role": "user", "content": "I take warfarin."},
                               {"role": "assistant", "content": "Noted."})),
    PreferenceRecord("p3", "Fever?", "Drink fluids; a stiff neck or a rash that does not fade needs urgent care.",
                     "Ignore it.", "a", "dr-c"),
]


def naive_answer_logprob(model, prompt_ids, answer_ids):
    ids = torch.tensor([list(prompt_ids) + list(answer_ids)])
    logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(answer_ids)[:, None]).sum()


def test_conversation_text_is_the_servers_chat_rendering():
    from clinical_rlhf.serve.backends.base import Message
    from clinical_rlhf.serve.backends.local import render_chat

    record = RECORDS[1]
    messages = tuple(Message(turn["role"], turn["content"]) for turn in record.conversation())
    assert conversation_text(record.prompt, record.messages) == render_chat(messages)
    assert conversation_text("Just this?", ()) == "Just this?"


def test_pairs_are_templated_like_rollouts_and_answers_end_in_eos(tiny_policy):
    tokenizer = tiny_policy.tokenizer
    pair = encode_records(tiny_policy, RECORDS[:1], max_length=256)[0]
    assert list(pair.prompt_ids) == tokenizer(tiny_policy.format_prompt(RECORDS[0].prompt))["input_ids"]
    assert pair.chosen_ids[-1] == tokenizer.eos_token_id and pair.rejected_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(pair.chosen_ids[:-1]).strip() == RECORDS[0].chosen
    assert tokenizer.decode(pair.rejected_ids[:-1]).strip() == RECORDS[0].rejected
    assert not pair.truncated
    # prompt + answer tokens are exactly the tokens of the joined text: nothing lost at the boundary
    joined = tokenizer(tiny_policy.format_prompt(RECORDS[0].prompt) + " " + RECORDS[0].chosen)["input_ids"]
    assert list(pair.prompt_ids + pair.chosen_ids[:-1]) == joined


def test_long_pairs_keep_the_prompt_end_and_fit_max_length(tiny_policy):
    tokenizer = tiny_policy.tokenizer
    long_prompt = "please explain " * 40 + "what to do about chest pain"
    full = encode_pair(tokenizer, tiny_policy.format_prompt, long_prompt, "Call emergency services now. " * 10,
                       "Wait.", max_length=10_000)
    cut = encode_pair(tokenizer, tiny_policy.format_prompt, long_prompt, "Call emergency services now. " * 10,
                      "Wait.", max_length=64)
    assert cut.truncated and not full.truncated
    assert len(cut.prompt_ids) + max(len(cut.chosen_ids), len(cut.rejected_ids)) <= 64
    assert len(cut.prompt_ids) == 32 and cut.prompt_ids == full.prompt_ids[-32:]  # half, the end kept
    assert cut.chosen_ids == full.chosen_ids[:32] and cut.rejected_ids == full.rejected_ids  # short one intact


def test_collated_batch_masks_prompts_and_padding(tiny_policy):
    pairs = encode_records(tiny_policy, RECORDS, max_length=256)
    batch = collate_pairs(pairs, tiny_policy.tokenizer.pad_token_id)
    assert len(batch) == 3 and batch.input_ids.shape[0] == 6
    answers = [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
    prompts = [p.prompt_ids for p in pairs] * 2
    for row, (prompt, answer) in enumerate(zip(prompts, answers)):
        assert batch.answer_mask[row].sum().item() == len(answer)
        assert batch.attention_mask[row].sum().item() == len(prompt) + len(answer)
        assert batch.input_ids[row, batch.prompt_width - len(prompt):batch.prompt_width].tolist() == list(prompt)


def test_batched_logprobs_match_a_naive_unpadded_computation(tiny_gpt2_config):
    bundle = fresh_bundle(tiny_gpt2_config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a non-zero adapter, so policy and reference differ
        for name, parameter in bundle.model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
    pairs = encode_records(bundle, RECORDS, max_length=256)
    batch = collate_pairs(pairs, bundle.tokenizer.pad_token_id)
    chosen, rejected = pair_logprobs(bundle, batch)
    assert chosen.requires_grad
    reference = reference_logprobs(bundle, pairs, micro_batch_size=2)
    with torch.no_grad():
        for index, pair in enumerate(pairs):
            for side, answer in enumerate((pair.chosen_ids, pair.rejected_ids)):
                policy = naive_answer_logprob(bundle.model, pair.prompt_ids, answer)
                assert (chosen, rejected)[side][index].item() == pytest.approx(policy.item(), abs=1e-4)
                with bundle.model.disable_adapter():
                    ref = naive_answer_logprob(bundle.model, pair.prompt_ids, answer)
                assert reference[index, side].item() == pytest.approx(ref.item(), abs=1e-4)
                assert abs(ref.item() - policy.item()) > 1e-2  # the adapter really was off
    means = reference_logprobs(bundle, pairs, micro_batch_size=4, reduction="mean")
    lengths = torch.tensor([[len(p.chosen_ids), len(p.rejected_ids)] for p in pairs], dtype=torch.float32)
    torch.testing.assert_close(means * lengths, reference, rtol=1e-5, atol=1e-4)
