"""One decoding step of multi-reward tilted sampling, B requests x V tokens x K objectives.

Dense: ``(l + beta * sum_k w[b, k] Q[k, b]) / T``, top-k, top-p, draw. Against the HF pipeline (a tilt
LogitsProcessor, then HF's Temperature/TopK/TopP warpers, softmax and ``torch.multinomial``, on float32 scores
as ``generate`` makes them) and plain-PyTorch sort-based filtering (one sort, cumsum, scatter, multinomial).
Candidate mode: MAVIS's per-step path (``topk(l / T, k)``, the full softmax for its KL term, the tilt over the
k, softmax, multinomial) against ``topk_with_logsumexp`` + ``tilted_sample(candidates=...)``. Besides the
copy-bandwidth floor of the run, each case times one plain read of its inputs (a float32 sum over their bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.harness import Case, Variant

ITEMSIZE = {"float32": 4, "bfloat16": 2}
HF_FILTERS = {"temperature": 0.7, "top_k": 50, "top_p": 0.9}


def _inputs(params: dict[str, Any], device: str):
    import torch

    generator = torch.Generator().manual_seed(0)
    batch, vocab, objectives = params["B"], params["V"], params["K"]
    dtype = getattr(torch, params["dtype"])
    logits = (torch.randn(batch, vocab, generator=generator) * 3).to(dtype)
    width = params.get("k", vocab)
    values = torch.randn(objectives, batch, width, generator=generator).to(dtype if width == vocab else torch.float32)
    weights = torch.rand(batch, objectives, generator=generator)
    weights = weights / weights.sum(-1, keepdim=True)
    beta = torch.full((batch,), 2.0)
    return logits.to(device), values.to(device), weights.to(device), beta.to(device)


def _dense_variant(load: Callable[[], Callable]) -> Callable[[dict[str, Any], str], Any]:
    def setup(params: dict[str, Any], device: str):
        sample = load()
        logits, values, weights, beta = _inputs(params, device)
        filters = params["filters"]
        return lambda: sample(logits, values, weights, beta, filters)

    return setup


def _moafast_dense() -> Callable:
    from moafast.ops import tilted_sample

    step = iter(range(1 << 62))
    return lambda logits, values, weights, beta, filters: tilted_sample(logits, values, weights, beta, seed=0,
                                                                        offset=next(step), **filters)


def _tilt(logits, values, weights, beta):
    import torch

    return logits.float() + beta[:, None] * torch.einsum("bk,kbv->bv", weights, values.float())


def _hf_pipeline() -> Callable:
    import torch
    from transformers import (LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                              TopPLogitsWarper)

    class MultiRewardTilt(LogitsProcessor):
        def __init__(self, values, weights, beta):
            self.values, self.weights, self.beta = values, weights, beta

        def __call__(self, input_ids, scores):
            tilt = torch.einsum("bk,kbv->bv", self.weights, self.values.float())
            return scores + self.beta[:, None] * tilt

    def sample(logits, values, weights, beta, filters):
        processors = LogitsProcessorList([MultiRewardTilt(values, weights, beta)])
        if filters.get("temperature", 1.0) != 1.0:
            processors.append(TemperatureLogitsWarper(filters["temperature"]))
        if filters.get("top_k", 0):
            processors.append(TopKLogitsWarper(filters["top_k"]))
        if filters.get("top_p", 1.0) < 1.0:
            processors.append(TopPLogitsWarper(filters["top_p"]))
        scores = processors(None, logits.float())
        return torch.multinomial(scores.softmax(-1), 1).squeeze(1)

    return sample


def _torch_sort() -> Callable:
    import torch

    def sample(logits, values, weights, beta, filters):
        scores = _tilt(logits, values, weights, beta) / filters.get("temperature", 1.0)
        ordered, order = scores.sort(-1, descending=True)
        if filters.get("top_k", 0):
            ordered[:, filters["top_k"]:] = float("-inf")
        if filters.get("top_p", 1.0) < 1.0:
            probabilities = ordered.softmax(-1)
            before = probabilities.cumsum(-1) - probabilities
            ordered = ordered.masked_fill(before >= filters["top_p"], float("-inf"))
        choice = torch.multinomial(ordered.softmax(-1), 1)
        return order.gather(1, choice).squeeze(1)

    return sample


def _read_inputs(params: dict[str, Any], device: str):
    """The memory floor in practice: one read of the inputs the sampler must read (a float32 sum over their
    bytes), timed like the variants, in its own process."""
    import torch

    logits, values, _, _ = _inputs(params, device)
    inputs = [logits] if "k" in params else [logits, values]
    as_float = [t.contiguous().view(torch.float32) for t in inputs]
    return lambda: [t.sum() for t in as_float]


def _candidate_variant(load: Callable[[], Callable]) -> Callable[[dict[str, Any], str], Any]:
    def setup(params: dict[str, Any], device: str):
        step = load()
        logits, values, weights, beta = _inputs(params, device)
        return lambda: step(logits, values, weights, beta, params["k"], params["temperature"])

    return setup


def _moafast_candidates() -> Callable:
    from moafast.ops import tilted_sample, topk_with_logsumexp

    counter = iter(range(1 << 62))

    def step(logits, values, weights, beta, k, temperature):
        _, candidates, lse = topk_with_logsumexp(logits, k, temperature=temperature)
        return tilted_sample(logits, values, weights, beta, candidates=candidates, temperature=temperature,
                             temperature_before_tilt=True, seed=0, offset=next(counter), return_logprobs=True,
                             base_logsumexp=lse)

    return step


def _mavis_step() -> Callable:
    """MAVIS's gen_utils per-step math: topk of l / T, full softmax for the KL term, tilt, softmax, multinomial."""
    import torch

    def step(logits, values, weights, beta, k, temperature):
        scaled = logits.float() / temperature
        top_values, top_indices = scaled.topk(k, dim=-1)
        reference_probabilities = scaled.softmax(-1)
        combined = top_values + beta[:, None] * torch.einsum("bk,kbj->bj", weights, values)
        probabilities = combined.softmax(-1)
        choice = torch.multinomial(probabilities, 1)
        token = top_indices.gather(1, choice)
        log_ratio = probabilities.gather(1, choice).log() - reference_probabilities.gather(1, token).log()
        return token.squeeze(1), log_ratio.squeeze(1)

    return step


DENSE_VARIANTS = (
    Variant("moafast tilted_sample", _dense_variant(_moafast_dense), ours=True),
    # The two pipelines take 0.1-0.8 s per call: five timed calls each, so that three processes per variant fit.
    Variant("HF LogitsProcessor + warpers + multinomial", _dense_variant(_hf_pipeline), requires=("transformers",),
            max_calls=5),
    Variant("torch sort-based top-k/top-p", _dense_variant(_torch_sort), max_calls=5),
    Variant("read the inputs once (torch sum)", _read_inputs, floor=True),
)
CANDIDATE_VARIANTS = (
    Variant("moafast topk_with_logsumexp + tilted_sample", _candidate_variant(_moafast_candidates), ours=True),
    Variant("MAVIS per-step path (torch)", _candidate_variant(_mavis_step)),
    Variant("read the logits once (torch sum)", _read_inputs, floor=True),
)


def cases(quick: bool, device: str) -> list[Case]:
    batch, objectives = (4, 2) if quick else (64, 4)
    vocabs = (1000,) if quick else (128256, 32000)
    filter_sets = {"hf": HF_FILTERS, "nofilter": {}}
    if not quick:
        filter_sets["topp"] = {"temperature": 0.7, "top_p": 0.9}
    out = []
    for vocab in vocabs:
        for dtype in ("float32", "bfloat16"):
            for label, filters in filter_sets.items():
                if label == "topp" and (vocab != vocabs[0] or dtype != "float32"):
                    continue
                out.append(Case(
                    name=f"dense_V{vocab}_{dtype}_{label}",
                    params={"B": batch, "V": vocab, "K": objectives, "dtype": dtype, "filters": filters},
                    variants=DENSE_VARIANTS,
                    bytes_moved=batch * vocab * (objectives + 1) * ITEMSIZE[dtype],  # logits and values, once
                    warmup=None if quick else 2, repeats=None if quick else 11,  # a noisy 2-core VM: more calls
                    rounds=1 if quick else 3,  # and more processes (harness.Case.rounds)
                ))
        k = 40
        out.append(Case(
            name=f"candidates_V{vocab}_k{k}",
            params={"B": batch, "V": vocab, "K": objectives, "k": min(k, vocab), "dtype": "float32",
                    "temperature": 1.0},
            variants=CANDIDATE_VARIANTS,
            bytes_moved=batch * vocab * 4,  # the logits, once (the k values are a few KiB)
            warmup=None if quick else 2, repeats=None if quick else 11, rounds=1 if quick else 3,
        ))
    return out
