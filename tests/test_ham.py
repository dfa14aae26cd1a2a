"""HaM: the objective (exact HV and its gradient, the random-scalarisation estimate), and training a tiny
random Llama with two verifiable, conflicting objectives: the heads spread and the front's HV rises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers", reason="HaM needs transformers (pip install moafast[test])")
pytest.importorskip("accelerate", reason="HaM needs accelerate (pip install moafast[test])")

import tiny_lm  # noqa: E402
from cli_runs import run_cli  # noqa: E402
from moafast import reference  # noqa: E402
from moafast.methods.ham import HaMConfig, HaMTrainer, normalise, scalarized_hypervolume  # noqa: E402
from moafast.methods.ham.objective import ham_hypervolume, random_directions  # noqa: E402
from moafast.testing import assert_close  # noqa: E402


def test_normalised_points_dominate_the_origin_and_keep_their_order() -> None:
    points = torch.tensor([[-3.0, -1.0], [-2.0, -2.5], [-2.5, -1.5]], dtype=torch.float64)
    scaled = normalise(points, margin=0.1)
    assert bool((scaled >= 0.1 - 1e-12).all()) and bool((scaled <= 1.1 + 1e-12).all())
    assert torch.equal(scaled.argsort(0), points.argsort(0))


def test_exact_loss_gradient_is_the_hypervolume_gradient_of_the_normalised_points() -> None:
    points = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    ham_hypervolume(points, margin=0.1).backward()
    expected = points.detach().clone().requires_grad_()
    reference.hypervolume(normalise(expected, 0.1), torch.zeros(3, dtype=torch.float64), maximize=True).backward()
    assert_close(points.grad, expected.grad, name="d points")


def test_random_scalarisation_estimates_the_hypervolume() -> None:
    points = normalise(torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64), 0.1)
    directions = random_directions(200_000, 2, torch.Generator().manual_seed(2), torch.float64)
    exact = reference.hypervolume(points, torch.zeros(2, dtype=torch.float64), maximize=True)
    assert_close(scalarized_hypervolume(points, directions), exact, atol=0, rtol=0.01, name="estimate")


def _front(trainer: HaMTrainer) -> dict:
    torch.manual_seed(0)
    return trainer.evaluate(lambda prompt, response: tiny_lm.token_rewards(response), samples_per_prompt=16,
                            max_new_tokens=5, min_new_tokens=5)


def test_heads_spread_along_the_front_and_its_hypervolume_rises(tmp_path: Path) -> None:
    trainer = HaMTrainer(HaMConfig(**tiny_lm.write_ham_run(tmp_path, max_steps=40, save_steps=40)))
    before = _front(trainer)
    trainer.train()
    after = _front(trainer)
    spread_before = torch.tensor(before["points"]).amax(0) - torch.tensor(before["points"]).amin(0)
    spread_after = torch.tensor(after["points"]).amax(0) - torch.tensor(after["points"]).amin(0)
    assert after["hypervolume"] > before["hypervolume"] + 0.05, (before, after)
    assert bool((spread_after > spread_before + 0.2).all()), (before, after)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 40
    trainer.evaluate(lambda p, r: tiny_lm.token_rewards(r), samples_per_prompt=2, max_new_tokens=3,
                     plot_path=tmp_path / "front.png")
    assert (tmp_path / "front.png").stat().st_size > 0


def test_scalarisation_mode_trains(tmp_path: Path) -> None:
    trainer = HaMTrainer(HaMConfig(**tiny_lm.write_ham_run(tmp_path, hv_mode="scalarization", num_directions=64)))
    metrics = trainer.train()
    assert metrics["step"] == 4 and metrics["hypervolume"] > 0


def test_resume_from_a_checkpoint_is_exact(tmp_path: Path) -> None:
    straight = HaMTrainer(HaMConfig(**tiny_lm.write_ham_run(tmp_path / "a", max_steps=4)))
    straight.train()
    HaMTrainer(HaMConfig(**tiny_lm.write_ham_run(tmp_path / "b", max_steps=2))).train()
    resumed = HaMTrainer(HaMConfig(**tiny_lm.write_ham_run(tmp_path / "b", max_steps=4,
                                                           resume_from_checkpoint="latest")))
    resumed.train()
    assert torch.equal(resumed.heads_model.heads, straight.heads_model.heads)


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    base = tiny_lm.write_ham_run(tmp_path)
    with pytest.raises(ValueError, match="hv_mode"):
        HaMConfig(**{**base, "hv_mode": "approximate"})
    with pytest.raises(ValueError, match="margin"):
        HaMConfig(**{**base, "margin": 0.0})
    (tmp_path / "bad.json").write_text(json.dumps([{"prompt": "p0", "response": "x", "rewards": [1.0]}]))
    with pytest.raises(ValueError, match="rewards, a list of 2"):
        HaMTrainer(HaMConfig(**{**base, "data": str(tmp_path / "bad.json")}))


def test_cli_trains_ham(tmp_path: Path) -> None:
    config = tmp_path / "ham.json"
    config.write_text(json.dumps(tiny_lm.write_ham_run(tmp_path, max_steps=2)))
    result = run_cli(["train", "ham", "--config", str(config)], tmp_path)
    assert "HaM: 2 steps" in result.stdout
    assert (tmp_path / "run" / "final" / "heads.safetensors").exists()


def test_two_process_ddp_run(tmp_path: Path) -> None:
    """gloo, 2 processes: each scores its own mini-batch, gradients are averaged, only rank 0 writes."""
    config = tmp_path / "ham.json"
    config.write_text(json.dumps(tiny_lm.write_ham_run(tmp_path, max_steps=2, per_device_batch_size=8)))
    run_cli(["train", "ham", "--config", str(config)], tmp_path, processes=2)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2, "one metrics line per step, from rank 0 only"
    assert (tmp_path / "run" / "final" / "heads.safetensors").exists()
