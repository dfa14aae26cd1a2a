"""MAVIS decoding, end to end, on a small random Llama policy with two value models (same vocabulary).

``moafast.methods.mavis.mavis_generate`` (fused top-k + logsumexp, one value forward per model per step over
the k candidates with a shared prefix cache, the fused tilted sampler) against a re-implementation of MAVIS's
reference loop (its ``get_mavis_alg`` with ``ValueGeneratorWithCache``: one prompt at a time; per step the
policy forward, ``topk(l / T)``, the k candidate sequences through each value model with a k-row cache that
re-feeds the last two tokens and is then sliced, values moved to the host and back, softmax + multinomial, the
full softmax for the KL term and a ``.item()`` EOS check). Time per call = all ``B`` prompts x ``new`` tokens.
"""

from __future__ import annotations

from typing import Any

from bench.harness import Case, Variant


def _models(params: dict[str, Any]):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

    from moafast.methods.mavis import ValueModel

    torch.manual_seed(0)
    vocab = params["V"]
    policy = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=688,
                                          num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                                          max_position_embeddings=256)).eval()
    values = []
    for _ in range(params["K"]):
        body = LlamaModel(LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256))
        model = ValueModel(body).eval()
        torch.nn.init.normal_(model.score.weight, std=0.1)
        values.append(model)
    prompts = torch.randint(3, vocab, (params["B"], params["T"]), generator=torch.Generator().manual_seed(1))
    return policy, values, prompts


def _moafast(params: dict[str, Any], device: str):
    import torch

    from moafast.methods.mavis import mavis_generate

    policy, values, prompts = _models(params)
    weights = torch.full((params["B"], params["K"]), 1.0 / params["K"])

    def run():
        mavis_generate(policy, values, prompts, weights=weights, beta=params["beta"], top_k=params["k"],
                       max_new_tokens=params["new"], seed=0, eos_token_id=-1)

    return run


def _reference_loop(params: dict[str, Any], device: str):
    import torch

    policy, values, prompts = _models(params)
    k, beta, temperature = params["k"], params["beta"], 1.0
    weights = [1.0 / params["K"]] * params["K"]

    def value_forward(model, ids, cache):
        outputs = model.backbone(input_ids=ids, cache=cache, use_cache=True)
        return model.score(outputs.last_hidden_state[:, -1]).squeeze(-1), outputs.cache

    def truncate(cache, count):
        for layer in cache.layers:
            layer.keys = layer.keys[:, :, :-count, :]
            layer.values = layer.values[:, :, :-count, :]

    def one_prompt(input_ids):
        policy_cache, value_caches, ratios = None, [None] * len(values), []
        with torch.no_grad():
            for step in range(params["new"]):
                new = input_ids if policy_cache is None else input_ids[:, -1:]
                outputs = policy(input_ids=new, cache=policy_cache, use_cache=True)
                policy_cache, logits = outputs.cache, outputs.logits
                top_logits, top_indices = torch.topk(logits[:, -1, :] / temperature, k=k, dim=-1)
                candidates = torch.cat([input_ids.repeat((k, 1)), top_indices.transpose(0, 1)], dim=1)
                combined = 0
                for i, model in enumerate(values):
                    feed = candidates if value_caches[i] is None else candidates[:, -2:]
                    scores, value_caches[i] = value_forward(model, feed, value_caches[i])
                    truncate(value_caches[i], 1)
                    combined = combined + weights[i] * scores.cpu().detach()
                probabilities = torch.softmax(top_logits + beta * combined.to(top_logits.device)[None], dim=-1)
                index = torch.multinomial(probabilities, num_samples=1).squeeze()
                token = top_indices[torch.arange(1), index].unsqueeze(1)
                reference = torch.topk(torch.softmax(logits[:, -1, :] / temperature, dim=-1), k=k, dim=-1).values
                ratios.append(torch.log(probabilities[0, index] / reference[0, index]))
                input_ids = torch.cat([input_ids, token], dim=1)
                if token.item() == -1:
                    break
        return input_ids, torch.stack(ratios).sum()

    def run():
        for b in range(prompts.shape[0]):
            one_prompt(prompts[b:b + 1])

    return run


VARIANTS = (
    Variant("moafast mavis_generate (batched)", _moafast, ours=True),
    Variant("MAVIS reference loop (per prompt)", _reference_loop, requires=("transformers",)),
)


def cases(quick: bool, device: str) -> list[Case]:
    base = {"V": 1000 if quick else 32000, "K": 2, "k": 40, "beta": 2.0, "T": 16, "new": 4 if quick else 32}
    out = []
    for batch in ((1, 2) if quick else (1, 8)):
        out.append(Case(name=f"B{batch}_new{base['new']}", params={**base, "B": batch}, variants=VARIANTS,
                        warmup=0 if quick else 1, repeats=2 if quick else 3))
    return out
