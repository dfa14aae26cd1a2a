"""MAH-DPO end to end on a tiny random-init Llama: the K-head model, balanced batches, reference cache, the
trainer (accuracy rising per head, exact resume, LoRA), head mixing at inference, the CLI and 2-process DDP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="MAH-DPO needs transformers (pip install moafast[test])")
pytest.importorskip("accelerate", reason="MAH-DPO needs accelerate (pip install moafast[test])")

import tiny_lm  # noqa: E402
from cli_runs import run_cli  # noqa: E402
from moafast.losses import dpo_loss  # noqa: E402
from moafast.methods.mah_dpo import (  # noqa: E402
    BalancedSchedule, MAHDPOConfig, MAHDPOTrainer, MultiHeadCausalLM, collate_pairs, tokenize_rows,
)


@pytest.mark.parametrize("tied", [True, False])
def test_heads_start_from_lm_head_plus_seeded_noise(tied: bool) -> None:
    backbone = tiny_lm.tiny_causal_lm(tie_word_embeddings=tied)
    lm_head = backbone.get_output_embeddings().weight.detach().clone()
    model = MultiHeadCausalLM(backbone, 3, init_noise=1e-3, seed=42)
    again = MultiHeadCausalLM(tiny_lm.tiny_causal_lm(tie_word_embeddings=tied), 3, init_noise=1e-3, seed=42)
    offsets = model.heads.detach() - lm_head
    assert torch.equal(model.heads, again.heads), "the initial heads are a function of the seed"
    assert 0.5e-3 < offsets.std().item() < 2e-3
    assert not torch.equal(offsets[0], offsets[1])
    assert backbone.get_output_embeddings().weight.requires_grad == tied, "an untied lm_head is left out of training"
    assert backbone.get_input_embeddings().weight.requires_grad


def _batch(tokenizer, pairs: int = 4):
    rows = tiny_lm.preference_rows("x", pairs, seed=1)
    return collate_pairs(tokenize_rows(tokenizer, rows, 16, 4), [i % 2 for i in range(pairs)], 0)


def test_forward_is_the_mah_dpo_loss_of_full_logits() -> None:
    tokenizer, model = tiny_lm.tiny_tokenizer(), MultiHeadCausalLM(tiny_lm.tiny_causal_lm(), 2, init_noise=0.1)
    batch = _batch(tokenizer)
    ref = torch.randn(2, 4)
    out = model(**batch, ref_chosen_logps=ref[0], ref_rejected_logps=ref[1], beta=0.3)
    hidden = model.decoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    logits = torch.einsum("sth,kvh->kstv", hidden, model.heads)[:, :, :-1]  # position t predicts token t + 1
    heads = torch.cat([batch["head_index"], batch["head_index"]])
    labels = batch["labels"][:, 1:]
    token_logps = logits[heads, torch.arange(8)].log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    logps = (token_logps * (labels != -100)).sum(1)
    losses = dpo_loss(logps[:4], logps[4:], ref[0], ref[1], beta=0.3).losses
    expected = torch.stack([losses[batch["head_index"] == k].mean() for k in range(2)]).mean()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(model.sequence_logps(batch["input_ids"], batch["attention_mask"], batch["labels"]),
                               torch.stack([(logits[k].log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
                                             * (labels != -100)).sum(1) for k in range(2)]))


def _greedy_with_head(model: MultiHeadCausalLM, input_ids: torch.Tensor, head: torch.Tensor, steps: int):
    ids = input_ids
    for _ in range(steps):
        hidden = model.decoder(input_ids=ids).last_hidden_state[:, -1]
        ids = torch.cat([ids, (hidden @ head.t()).argmax(-1, keepdim=True)], dim=1)
    return ids


def test_generate_mixes_the_heads_per_batch_and_per_row() -> None:
    model = MultiHeadCausalLM(tiny_lm.tiny_causal_lm(), 2, init_noise=0.5).eval()
    lm_head = model.backbone.get_output_embeddings()
    prompt = torch.tensor([[5, 6], [7, 8]])
    kwargs = {"max_new_tokens": 5, "do_sample": False, "pad_token_id": 0, "eos_token_id": None}
    w = [0.25, 0.75]
    merged = 0.25 * model.heads[0] + 0.75 * model.heads[1]
    assert torch.equal(model.generate(prompt, weights=w, **kwargs), _greedy_with_head(model, prompt, merged, 5))
    assert torch.equal(model.generate(prompt, weights=[2.0, 6.0], **kwargs), model.generate(prompt, weights=w, **kwargs)), \
        "weights are normalised to sum 1"
    per_row = model.generate(prompt, weights=[[1.0, 0.0], [0.0, 1.0]], **kwargs)
    assert torch.equal(per_row[0], _greedy_with_head(model, prompt[:1], model.heads[0], 5)[0])
    assert torch.equal(per_row[1], _greedy_with_head(model, prompt[1:], model.heads[1], 5)[0])
    assert model.backbone.get_output_embeddings() is lm_head, "generate restores the backbone's output layer"
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="weights"):
            model.generate(prompt, weights=bad, **kwargs)


def test_balanced_schedule_is_balanced_resumable_and_splits_over_processes() -> None:
    single = BalancedSchedule([10, 7, 9], pairs_per_objective=2, world_size=1, seed=3)
    split = BalancedSchedule([10, 7, 9], pairs_per_objective=1, world_size=2, seed=3)
    assert single.micro_batches_per_epoch == split.micro_batches_per_epoch == 3
    for step in range(7):
        batch = single.batch(step)
        assert [k for k, _ in batch] == [0, 0, 1, 1, 2, 2]
        assert sorted(batch) == sorted(split.batch(step, 0) + split.batch(step, 1))
        assert batch == BalancedSchedule([10, 7, 9], 2, 1, 3).batch(step), "a function of the step alone"
    epoch = [pair for step in range(3) for pair in single.batch(step)]
    assert len(set(epoch)) == len(epoch) == 18, "no pair twice within an epoch"
    with pytest.raises(ValueError, match="per_device_batch_size"):
        BalancedSchedule([3, 3], pairs_per_objective=2, world_size=2)


def _config(tmp_path: Path, **overrides) -> MAHDPOConfig:
    return MAHDPOConfig(**tiny_lm.write_run(tmp_path, **overrides))


def test_each_heads_held_out_accuracy_on_its_objective_rises(tmp_path: Path) -> None:
    trainer = MAHDPOTrainer(_config(tmp_path, max_steps=30, save_steps=30))
    before = trainer.evaluate()
    metrics = trainer.train()
    after = trainer.evaluate()
    for name in ("x", "y"):
        assert after[name]["accuracy"] >= before[name]["accuracy"] + 0.25, (name, before[name], after[name])
        assert after[name]["accuracy"] >= 0.85, (name, after[name])
    assert after["x"]["accuracy/head_y"] < after["x"]["accuracy"], "the heads specialise"
    assert metrics["step"] == 30 and metrics["pairs/x"] == metrics["pairs/y"] == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 30 and json.loads(lines[-1])["loss"] < json.loads(lines[0])["loss"]
    reloaded = MultiHeadCausalLM.from_pretrained(tmp_path / "run" / "final")
    assert torch.equal(reloaded.heads, trainer.accelerator.unwrap_model(trainer.model).heads)


def test_reference_logps_are_cached_and_reused(tmp_path: Path, monkeypatch) -> None:
    config = _config(tmp_path, max_steps=1)
    first = MAHDPOTrainer(config)
    cache = tmp_path / "run" / "reference_logps" / "train_x.safetensors"
    assert cache.exists()
    import moafast.methods.mah_dpo.trainer as trainer_module

    def fail(*args, **kwargs):
        raise AssertionError("the cached reference log-probs should have been reused")

    monkeypatch.setattr(trainer_module, "compute_reference_logps", fail)
    second = MAHDPOTrainer(config)
    for key in first.reference_tables:
        assert torch.equal(first.reference_tables[key], second.reference_tables[key])
    ref = first.reference_tables["train/x"]
    assert ref.shape == (48, 2) and bool((ref < 0).all())


def _heads(trainer: MAHDPOTrainer) -> torch.Tensor:
    return trainer.accelerator.unwrap_model(trainer.model).heads.detach().clone()


def test_resume_from_a_checkpoint_is_exact(tmp_path: Path) -> None:
    straight = MAHDPOTrainer(_config(tmp_path / "a", max_steps=4, save_steps=2, optimizer="rmsprop", warmup_steps=3))
    straight.train()
    interrupted = MAHDPOTrainer(_config(tmp_path / "b", max_steps=2, save_steps=2, optimizer="rmsprop",
                                        warmup_steps=3))
    interrupted.train()
    resumed = MAHDPOTrainer(_config(tmp_path / "b", max_steps=4, save_steps=2, optimizer="rmsprop", warmup_steps=3,
                                    resume_from_checkpoint="latest"))
    resumed.train()
    assert resumed.step == 4
    torch.testing.assert_close(_heads(resumed), _heads(straight), rtol=0, atol=0)


def test_gradient_accumulation_equals_the_larger_batch(tmp_path: Path) -> None:
    whole = MAHDPOTrainer(_config(tmp_path / "a", max_steps=2, per_device_batch_size=4))
    whole.train()
    accumulated = MAHDPOTrainer(_config(tmp_path / "b", max_steps=2, per_device_batch_size=2,
                                        gradient_accumulation_steps=2))
    accumulated.train()
    torch.testing.assert_close(_heads(accumulated), _heads(whole), rtol=1e-5, atol=1e-6)
    logs = [[json.loads(line) for line in (tmp_path / run / "run" / "metrics.jsonl").read_text().splitlines()]
            for run in ("a", "b")]
    for key in ("loss", "grad_norm"):  # the gradient norm is not scale-free, unlike Adam's update
        torch.testing.assert_close(torch.tensor([m[key] for m in logs[1]]), torch.tensor([m[key] for m in logs[0]]))


def test_lora_backbone_trains_adapters_and_heads_only(tmp_path: Path) -> None:
    pytest.importorskip("peft", reason="the LoRA path needs peft (pip install moafast[test])")
    trainer = MAHDPOTrainer(_config(tmp_path, max_steps=2, lora={"r": 4, "lora_alpha": 8,
                                                                  "target_modules": ["q_proj", "v_proj"]}))
    model = trainer.accelerator.unwrap_model(trainer.model)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "heads" in trainable and trainable - {"heads"} and all("lora_" in n for n in trainable - {"heads"})
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    heads = _heads(trainer)
    trainer.train()
    assert not torch.equal(_heads(trainer), heads)
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    reloaded = MultiHeadCausalLM.from_pretrained(tmp_path / "run" / "final")
    torch.testing.assert_close(reloaded.heads, model.heads)


def test_config_errors_name_the_field_and_the_fix(tmp_path: Path) -> None:
    base = tiny_lm.write_run(tmp_path)
    with pytest.raises(ValueError, match="per_device_batch_size.*multiple"):
        MAHDPOConfig(**{**base, "per_device_batch_size": 3})
    with pytest.raises(ValueError, match="reference"):
        MAHDPOConfig(**{**base, "reference": "sometimes"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**base, "learning_rte": 1.0}))
    with pytest.raises(ValueError, match="learning_rte"):
        MAHDPOConfig.from_file(path)
    (tmp_path / "rows.json").write_text(json.dumps([{"prompt": "p0", "chosen": "x"}]))
    with pytest.raises(ValueError, match="rejected"):
        MAHDPOTrainer(MAHDPOConfig(**{**base, "objectives": {"x": str(tmp_path / "rows.json"), "y": base["objectives"]["y"]}}))


def test_cli_trains_from_a_yaml_config(tmp_path: Path) -> None:
    import yaml

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_lm.write_run(tmp_path, max_steps=2)))
    result = run_cli(["train", "mah-dpo", "--config", str(config)], tmp_path)
    assert (tmp_path / "run" / "final" / "heads.safetensors").exists()
    assert "x: accuracy" in result.stdout and "y: accuracy" in result.stdout


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    """gloo, 2 processes x 2 pairs per micro-batch vs 1 process x 4 pairs: the same losses and heads."""
    runs = {}
    for processes, batch in ((1, 4), (2, 2)):
        directory = tmp_path / f"p{processes}"
        directory.mkdir()
        config = directory / "run.json"
        config.write_text(json.dumps(tiny_lm.write_run(directory, max_steps=3, per_device_batch_size=batch,
                                                       save_steps=3, reference="cache")))
        run_cli(["train", "mah-dpo", "--config", str(config)], directory, processes=processes)
        metrics = [json.loads(line) for line in (directory / "run" / "metrics.jsonl").read_text().splitlines()]
        heads = MultiHeadCausalLM.from_pretrained(directory / "run" / "final").heads.detach()
        runs[processes] = ([m["loss"] for m in metrics], heads)
    assert len(runs[2][0]) == 3
    torch.testing.assert_close(torch.tensor(runs[2][0]), torch.tensor(runs[1][0]), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(runs[2][1], runs[1][1], rtol=1e-4, atol=1e-6)
