"""A tiny random-init causal LM, its word-level tokenizer and synthetic preference data with verifiable
objectives ("more x" and "more y" in the completion), built in code: nothing comes from a hub."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = ["x", "y", "z", "p0", "p1", "p2", "p3"]
SPECIAL = ["<pad>", "<eos>", "<unk>"]


def tiny_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>",
                                   unk_token="<unk>")


def tiny_causal_lm(tie_word_embeddings: bool = True, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, tie_word_embeddings=tie_word_embeddings,
                         pad_token_id=0, eos_token_id=1, bos_token_id=None)
    return LlamaForCausalLM(config)


def preference_rows(objective: str, count: int, seed: int) -> list[dict[str, str]]:
    """Pairs whose chosen completion holds more ``objective`` tokens ("x" or "y") than the rejected one."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < count:
        prompt = " ".join(rng.choice(WORDS[3:]) for _ in range(2))
        a, b = ([rng.choice(WORDS[:3]) for _ in range(5)] for _ in range(2))
        if a.count(objective) == b.count(objective):
            continue
        chosen, rejected = (a, b) if a.count(objective) > b.count(objective) else (b, a)
        rows.append({"prompt": prompt, "chosen": " ".join(chosen), "rejected": " ".join(rejected)})
    return rows


def write_run(directory: Path, tie_word_embeddings: bool = True, train_pairs: int = 48, eval_pairs: int = 32,
              **config_overrides) -> dict:
    """Saves the tiny model and tokenizer and two objectives' data under ``directory``; returns a MAH-DPO config
    dict (JSON-able) pointing at them."""
    model_dir = directory / "tiny-lm"
    tiny_causal_lm(tie_word_embeddings).save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    objectives, held_out = {}, {}
    for i, name in enumerate(("x", "y")):
        for split, count, target in (("train", train_pairs, objectives), ("eval", eval_pairs, held_out)):
            path = directory / f"{name}_{split}.json"
            path.write_text(json.dumps(preference_rows(name, count, seed=100 * i + (split == "eval"))))
            target[name] = str(path)
    config = {"model_name_or_path": str(model_dir), "objectives": objectives, "eval_objectives": held_out,
              "output_dir": str(directory / "run"), "per_device_batch_size": 4, "max_steps": 4,
              "learning_rate": 3e-3, "warmup_steps": 0, "beta": 0.5, "max_length": 16, "max_prompt_length": 4,
              "save_steps": 2, "optimizer": "adamw"}
    config.update(config_overrides)
    return config


def token_rewards(response: str) -> list[float]:
    """The two verifiable, conflicting objectives of the HaM tests: the share of "x" and of "y" tokens."""
    tokens = response.split()
    return [tokens.count("x") / max(1, len(tokens)), tokens.count("y") / max(1, len(tokens))]


def scored_rows(count: int, seed: int) -> list[dict]:
    """Random 5-token responses over x/y/z with their two rewards."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        response = " ".join(rng.choice(WORDS[:3]) for _ in range(5))
        rows.append({"prompt": " ".join(rng.choice(WORDS[3:]) for _ in range(2)), "response": response,
                     "rewards": token_rewards(response)})
    return rows


def write_ham_run(directory: Path, **config_overrides) -> dict:
    """The tiny model and tokenizer, scored train and eval data, and a HaM config dict pointing at them."""
    model_dir = directory / "tiny-lm"
    tiny_causal_lm().save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    for split, count, seed in (("train", 96, 0), ("eval", 4, 1)):
        (directory / f"scored_{split}.json").write_text(json.dumps(scored_rows(count, seed)))
    config = {"model_name_or_path": str(model_dir), "objectives": ["x", "y"], "num_heads": 3,
              "data": str(directory / "scored_train.json"), "eval_data": str(directory / "scored_eval.json"),
              "output_dir": str(directory / "run"), "per_device_batch_size": 16, "max_steps": 4,
              "learning_rate": 3e-2, "max_length": 16, "max_prompt_length": 4, "save_steps": 2}
    config.update(config_overrides)
    return config


def prompt_token_rewards(prompt: str, response: str) -> list[float]:
    """``token_rewards`` as a ``reward_fn(prompt, response)`` importable by name (``tiny_lm:...``)."""
    return token_rewards(response)


def write_mavis_run(directory: Path, prompts: int = 12, **config_overrides) -> dict:
    """The tiny model, tokenizer and prompts under ``directory``; returns a MAVIS config dict for them."""
    model_dir = directory / "tiny-lm"
    tiny_causal_lm().save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    rng = random.Random(7)
    rows = [{"prompt": " ".join(rng.choice(WORDS[3:]) for _ in range(2))} for _ in range(prompts)]
    (directory / "prompts.json").write_text(json.dumps(rows))
    config = {"model_name_or_path": str(model_dir), "output_dir": str(directory / "run"),
              "prompts": str(directory / "prompts.json"), "reward_function": "tiny_lm:prompt_token_rewards",
              "objectives": ["x", "y"], "root_children": 4, "children": 2, "num_layers": 3, "max_new_tokens": 6,
              "top_k": 8, "epochs": 30, "per_device_batch_size": 16, "learning_rate": 3e-3, "save_steps": 10,
              "optimizer": "adamw", "max_length": 32, "max_prompt_length": 8}
    config.update(config_overrides)
    return config
