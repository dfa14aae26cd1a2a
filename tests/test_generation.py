"""moafast.generate (KV-cache loop over the fused sampler) and the HF LogitsProcessor integration."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers", reason="the generation tests need transformers (pip install moafast[methods])")

from transformers import LogitsProcessorList  # noqa: E402

from moafast import generate  # noqa: E402
from moafast.integrations import MultiRewardTiltProcessor  # noqa: E402
from tiny_lm import tiny_causal_lm, tiny_tokenizer  # noqa: E402

PAD, EOS = 0, 1


def prompts(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    return encoded["input_ids"], encoded["attention_mask"]


def token_id(word: str) -> int:
    return tiny_tokenizer().convert_tokens_to_ids(word)


def last_token_table(objectives: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Q[k, previous token, next token]: scores that depend on the prefix through its last token."""
    return torch.randn(objectives, vocab, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def dense_values(table: torch.Tensor):
    def values_fn(sequences, attention_mask=None, candidates=None):
        return table[:, sequences[:, -1], :]

    return values_fn


def test_plain_greedy_matches_hf_generate() -> None:
    model = tiny_causal_lm().eval()
    input_ids, mask = prompts(["p0 p1 x", "p2", "y y p3 z"])
    ours = generate(model, input_ids, attention_mask=mask, max_new_tokens=8, top_k=1, seed=0)
    theirs = model.generate(input_ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=PAD,
                            eos_token_id=EOS)
    assert torch.equal(ours.sequences, theirs)


def test_tilt_processor_in_hf_generate_matches_moafast_generate() -> None:
    model = tiny_causal_lm().eval()
    input_ids, mask = prompts(["p0 p1", "p2 x", "y p3"])
    table = last_token_table(2, model.config.vocab_size)
    weights = torch.tensor([[1.0, 0.0], [0.2, 0.8], [0.5, 0.5]])
    values_fn = dense_values(table)
    processor = MultiRewardTiltProcessor(weights, lambda ids, candidates: values_fn(ids), beta=1.5)
    theirs = model.generate(input_ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=PAD,
                            eos_token_id=EOS, logits_processor=LogitsProcessorList([processor]))
    ours = generate(model, input_ids, attention_mask=mask, weights=weights, beta=1.5, values_fn=values_fn,
                    max_new_tokens=6, top_k=1, seed=0)
    assert torch.equal(ours.sequences, theirs)
    untilted = model.generate(input_ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=PAD,
                              eos_token_id=EOS)
    assert not torch.equal(untilted, theirs), "the tilt changed nothing: the test cannot tell it applies"


def test_per_request_weights_steer_each_request() -> None:
    model = tiny_causal_lm().eval()
    vocab = model.config.vocab_size
    table = torch.zeros(2, vocab, vocab)
    table[0, :, token_id("x")] = 1.0
    table[1, :, token_id("y")] = 1.0
    input_ids, mask = prompts(["p0 p1"] * 8)
    weights = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).repeat(4, 1)
    out = generate(model, input_ids, attention_mask=mask, weights=weights, beta=8.0, values_fn=dense_values(table),
                   max_new_tokens=10, seed=3, eos_token_id=-1)
    new = out.sequences[:, input_ids.shape[1]:]
    share_x = (new == token_id("x")).float().mean(1)
    share_y = (new == token_id("y")).float().mean(1)
    assert bool((share_x[0::2] > 0.8).all()) and bool((share_y[1::2] > 0.8).all()), (share_x, share_y)
    assert bool((out.log_ratio > 0).all()), "a tilt towards one token must move away from the base distribution"


def test_per_request_seeds_make_outputs_independent_of_the_batch() -> None:
    model = tiny_causal_lm().eval()
    input_ids, mask = prompts(["p0 p1", "p2 x", "y p3", "z z"])
    table = last_token_table(2, model.config.vocab_size, seed=1)
    weights = torch.rand(4, 2)
    seeds = torch.tensor([11, 22, 33, 44])
    kwargs = {"beta": 1.0, "values_fn": dense_values(table), "max_new_tokens": 7, "top_p": 0.9, "eos_token_id": -1}
    together = generate(model, input_ids, attention_mask=mask, weights=weights, seed=seeds, **kwargs)
    alone = generate(model, input_ids[2:3], attention_mask=mask[2:3], weights=weights[2:3], seed=seeds[2:3],
                     **kwargs)
    assert torch.equal(alone.sequences[0], together.sequences[2])
    again = generate(model, input_ids, attention_mask=mask, weights=weights, seed=seeds, **kwargs)
    assert torch.equal(again.sequences, together.sequences)


def test_candidate_mode_scores_only_candidates_and_tracks_base_logprobs() -> None:
    model = tiny_causal_lm().eval()
    input_ids, mask = prompts(["p0 p1 x", "p2 y z"])
    seen = []

    def values_fn(sequences, attention_mask, candidates):
        seen.append(candidates.clone())
        return (candidates == token_id("z")).float()[None] * 2.0

    temperature = 0.8
    out = generate(model, input_ids, attention_mask=mask, weights=torch.ones(2, 1), beta=1.0, values_fn=values_fn,
                   candidates_k=4, max_new_tokens=5, temperature=temperature, temperature_before_tilt=True, seed=5,
                   eos_token_id=-1)
    new = out.sequences[:, input_ids.shape[1]:]
    for step, candidates in enumerate(seen):
        assert bool((candidates == new[:, step:step + 1]).any(1).all()), "a token outside the candidates was drawn"
    full_mask = torch.ones_like(out.sequences)
    full_mask[:, : input_ids.shape[1]] = mask
    logits = model(input_ids=out.sequences, attention_mask=full_mask,
                   position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0)).logits
    base = (logits[:, input_ids.shape[1] - 1:-1] / temperature).log_softmax(-1).gather(-1, new[..., None])[..., 0]
    torch.testing.assert_close(out.base_logprobs, base, atol=1e-4, rtol=1e-4)


def test_min_new_tokens_keeps_eos_out_of_the_first_steps() -> None:
    model = tiny_causal_lm().eval()
    vocab = model.config.vocab_size
    table = torch.zeros(1, vocab, vocab)
    table[0, :, EOS] = 10.0  # the tilt makes EOS by far the likeliest token
    input_ids, mask = prompts(["p0 p1"] * 6)
    kwargs = {"attention_mask": mask, "weights": torch.ones(6, 1), "beta": 1.0, "values_fn": dense_values(table),
              "max_new_tokens": 6, "seed": 2, "eos_token_id": EOS}
    eager = generate(model, input_ids, **kwargs)
    assert bool((eager.sequences[:, input_ids.shape[1]] == EOS).all()), "the test needs EOS to win without the mask"
    held = generate(model, input_ids, min_new_tokens=3, **kwargs)
    new = held.sequences[:, input_ids.shape[1]:]
    assert bool((new[:, :3] != EOS).all()) and bool((new[:, 3] == EOS).all())


def test_generate_rejects_bad_input() -> None:
    model = tiny_causal_lm().eval()
    input_ids, mask = prompts(["p0 p1"])
    with pytest.raises(ValueError, match="values_fn and weights"):
        generate(model, input_ids, weights=torch.ones(1, 2))
    with pytest.raises(ValueError, match=r"weights: expected shape \[B, K\] with B = 1"):
        generate(model, input_ids, weights=torch.ones(2, 2), values_fn=lambda *a: None)
    with pytest.raises(ValueError, match="attention_mask: expected shape"):
        generate(model, input_ids, attention_mask=mask[:, :1])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, input_ids, max_new_tokens=0)
    processor = MultiRewardTiltProcessor(torch.ones(3, 1), lambda ids, c: torch.zeros(1, 3, 10))
    with pytest.raises(ValueError, match="weights: 3 rows for 1 sequences"):
        processor(input_ids, torch.zeros(1, 10))
