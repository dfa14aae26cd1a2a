"""MAVIS: candidate scoring with the shared prefix cache, trees and labels, value training with exact resume,
decoding that follows the weights, the CLI and a 2-process DDP run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="MAVIS needs transformers (pip install moafast[test])")
pytest.importorskip("accelerate", reason="MAVIS needs accelerate (pip install moafast[test])")

import tiny_lm  # noqa: E402
from cli_runs import run_cli  # noqa: E402
from moafast import generate  # noqa: E402
from moafast.methods.mavis import (CandidateScorer, MavisConfig, MavisValueTrainer, TreeNode,  # noqa: E402
                                   ValueModel, label_trees, mavis_generate, sample_trees, value_model_path)
from moafast.methods.mavis.tree import segment_length  # noqa: E402


def tiny_value_model(seed: int = 0) -> ValueModel:
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=10, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    model = ValueModel(LlamaModel(config)).eval()
    torch.nn.init.normal_(model.score.weight)
    return model


def test_candidate_scorer_equals_one_forward_per_candidate() -> None:
    model = tiny_value_model()
    sequences = torch.tensor([[0, 0, 3, 4, 5], [6, 7, 8, 9, 3], [0, 0, 0, 0, 4]])
    mask = (sequences != 0).long()
    scorer = CandidateScorer(model)
    for _ in range(3):
        candidates = torch.stack([torch.randperm(8)[:4] + 2 for _ in range(3)])
        ours = scorer(sequences, mask, candidates)
        with torch.no_grad():
            expected = torch.stack([model(torch.cat([sequences, candidates[:, j:j + 1]], 1),
                                          torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1))
                                    for j in range(4)], 1)
        torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
        sequences = torch.cat([sequences, candidates[:, :1]], 1)
        mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], 1)
    with pytest.raises(ValueError, match="call reset"):
        scorer(sequences[:, :4], mask[:, :4], candidates)


def test_value_model_save_and_load_roundtrip(tmp_path: Path) -> None:
    model = tiny_value_model()
    model.save_pretrained(tmp_path / "v")
    loaded = ValueModel.from_pretrained(tmp_path / "v").eval()
    ids = torch.tensor([[3, 4, 5, 6]])
    torch.testing.assert_close(loaded(ids, torch.ones_like(ids)), model(ids, torch.ones_like(ids)))
    with pytest.raises(ValueError, match="expected a ValueModel checkpoint"):
        ValueModel.from_pretrained(tmp_path)


def test_segment_lengths_leave_a_token_for_every_layer() -> None:
    rng = random.Random(0)
    for _ in range(200):
        left, layers = rng.randint(3, 40), rng.randint(1, 3)
        total, remaining = 0, left
        for layer in range(layers):
            length = segment_length(remaining, layers - layer, rng)
            assert 1 <= length <= remaining - (layers - layer - 1)
            remaining -= length
            total += length
        assert total == left


def test_trees_have_the_shape_and_the_means_asked_for() -> None:
    model = tiny_lm.tiny_causal_lm().eval()

    def sampler(ids, mask, length, seed):
        return generate(model, ids, attention_mask=mask, max_new_tokens=length, seed=seed, eos_token_id=-1)

    nodes = sample_trees(sampler, [[3, 4], [5]], root_children=3, children=2, num_layers=3, max_new_tokens=7,
                         eos_token_id=None, pad_token_id=0, seed=0, batch_size=5)
    assert len(nodes) == 2 * (1 + 3 + 6 + 12)
    leaves = [n for n in nodes if not n.children]
    assert len(leaves) == 24 and all(len(n.tokens) == 7 and n.depth == 3 for n in leaves)
    for node in nodes:
        for child in node.children:
            assert nodes[child].tokens[:len(node.tokens)] == node.tokens and nodes[child].parent is not None
    label_trees(nodes, lambda node: [node.tokens.count(7), 1.0])
    for node in nodes:
        if node.children:
            expected = sum(nodes[c].labels[0] for c in node.children) / len(node.children)
            assert node.labels[0] == pytest.approx(expected)
        else:
            assert node.labels == [float(node.tokens.count(7)), 1.0]


def test_soft_labels_subtract_the_mean_leaf_log_ratio() -> None:
    nodes = [TreeNode(prompt=0, tokens=[], parent=None, depth=0, children=[1, 2]),
             TreeNode(prompt=0, tokens=[3], parent=0, depth=1, log_ratio=0.5),
             TreeNode(prompt=0, tokens=[4], parent=0, depth=1, log_ratio=1.5)]
    label_trees(nodes, lambda node: [2.0 if node.tokens == [3] else 4.0], kl_penalty=0.1)
    assert nodes[1].labels == pytest.approx([2.0 - 0.05])
    assert nodes[2].labels == pytest.approx([4.0 - 0.15])
    assert nodes[0].labels == pytest.approx([3.0 - 0.1])


def mean_rewards(trainer: MavisValueTrainer, weights: list[float], beta: float) -> torch.Tensor:
    tokenizer = trainer.tokenizer
    tokenizer.padding_side = "left"
    encoded = tokenizer(["p0 p1", "p2 p3", "p1 p1", "p3 p0"] * 8, return_tensors="pt", padding=True)
    out = mavis_generate(trainer.policy, trainer.value_models(), encoded["input_ids"],
                         attention_mask=encoded["attention_mask"], weights=torch.tensor([weights] * 32), beta=beta,
                         top_k=8, max_new_tokens=6, seed=1, eos_token_id=tokenizer.eos_token_id)
    responses = [tokenizer.decode(s[encoded["input_ids"].shape[1]:], skip_special_tokens=True)
                 for s in out.sequences]
    return torch.tensor([tiny_lm.token_rewards(r) for r in responses]).mean(0)


def test_end_to_end_raising_a_weight_raises_that_reward(tmp_path: Path) -> None:
    """Two verifiable objectives (share of "x", share of "y" tokens): value models trained on base-policy trees
    steer decoding towards whichever objective is weighted."""
    trainer = MavisValueTrainer(MavisConfig(**tiny_lm.write_mavis_run(tmp_path)))
    trainer.train()
    untilted = mean_rewards(trainer, [1.0, 0.0], 0.0)
    towards_x = mean_rewards(trainer, [1.0, 0.0], 20.0)
    towards_y = mean_rewards(trainer, [0.0, 1.0], 20.0)
    assert towards_x[0] > untilted[0] + 0.2 and towards_x[0] > towards_y[0] + 0.2, (untilted, towards_x, towards_y)
    assert towards_y[1] > untilted[1] + 0.2 and towards_y[1] > towards_x[1] + 0.2, (untilted, towards_x, towards_y)


def test_interrupted_training_resumes_to_the_same_value_models(tmp_path: Path, monkeypatch) -> None:
    settings = {"rounds": 2, "epochs": 2, "save_steps": 3, "prompts": 6}
    reference_dir, interrupted_dir = tmp_path / "reference", tmp_path / "interrupted"
    reference_dir.mkdir()
    interrupted_dir.mkdir()
    MavisValueTrainer(MavisConfig(**tiny_lm.write_mavis_run(reference_dir, **settings))).train()

    config = MavisConfig(**tiny_lm.write_mavis_run(interrupted_dir, **settings))
    calls = {"count": 0}
    original = torch.nn.functional.mse_loss

    def failing_mse(*args, **kwargs):
        calls["count"] += 1
        if calls["count"] == 41:  # round 1, objective x (after 2 x 18 steps of round 0), past its checkpoint-3
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "mse_loss", failing_mse)
    with pytest.raises(KeyboardInterrupt):
        MavisValueTrainer(config).train()
    monkeypatch.setattr(torch.nn.functional, "mse_loss", original)
    assert json.loads((interrupted_dir / "run" / "mavis_state.json").read_text())["finished"] == ["round0/x",
                                                                                                  "round0/y"]
    assert (interrupted_dir / "run" / "units" / "round1_x" / "checkpoint-3").exists()
    MavisValueTrainer(config).train()
    for round_index in range(2):
        for name in ("x", "y"):
            ours = ValueModel.from_pretrained(value_model_path(config.output_dir, round_index, name)).state_dict()
            theirs = ValueModel.from_pretrained(
                value_model_path(reference_dir / "run", round_index, name)).state_dict()
            for key in theirs:
                torch.testing.assert_close(ours[key], theirs[key], msg=f"round {round_index} {name} {key}")
    assert (interrupted_dir / "run" / "trees" / "round1_x.json").exists()


def test_cli_trains_values_and_generates(tmp_path: Path) -> None:
    config = tmp_path / "mavis.json"
    config.write_text(json.dumps(tiny_lm.write_mavis_run(tmp_path, epochs=1, prompts=4)))
    train = run_cli(["train", "mavis-values", "--config", str(config)], tmp_path)
    assert "MAVIS values: 1 round(s) x 2 objective(s)" in train.stdout
    decode = run_cli(["generate", "mavis", "--config", str(config), "--prompt", "p0 p1", "--prompt", "p2",
                      "--weights", "0.5,0.5", "--beta", "2"], tmp_path)
    assert decode.stdout.count("log pi/pi_ref") == 2
    bad = run_cli(["generate", "mavis", "--config", str(config), "--prompt", "p0", "--weights", "1"], tmp_path,
                  check=False)
    assert bad.returncode != 0 and "--weights: expected 2 values" in bad.stderr


def test_two_process_ddp_value_training(tmp_path: Path) -> None:
    """gloo, 2 processes: each samples trees for half the prompts, the shards are merged, training is DDP."""
    config = tmp_path / "mavis.json"
    config.write_text(json.dumps(tiny_lm.write_mavis_run(tmp_path, epochs=1, prompts=6)))
    run_cli(["train", "mavis-values", "--config", str(config)], tmp_path, processes=2)
    trees = json.loads((tmp_path / "run" / "trees" / "round0.json").read_text())
    assert sorted({node["prompt"] for node in trees}) == list(range(6)), "both shards merged"
    assert len(trees) == 6 * (1 + 4 + 8 + 16) or all(node["finished"] for node in trees if not node["children"])
    assert (value_model_path(tmp_path / "run", 0, "y") / "score.safetensors").exists()


def test_lora_value_models_train_save_and_load(tmp_path: Path) -> None:
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    trainer = MavisValueTrainer(MavisConfig(**tiny_lm.write_mavis_run(tmp_path, epochs=1, prompts=4, lora=lora)))
    trainer.train()
    saved = value_model_path(trainer.config.output_dir, 0, "x")
    assert (saved / "backbone" / "adapter_config.json").exists(), "only the adapter is saved under LoRA"
    loaded = trainer.value_models()[0]
    ids = torch.tensor([[5, 6, 7]])
    assert torch.isfinite(loaded(ids, torch.ones_like(ids))).all()
    assert bool((loaded.score.weight != 0).any()), "the score head trains with the adapter"
