"""The `moafast` command: `moafast bench ...` (benchmarks from the source checkout), `moafast env` and
`moafast train <method> --config <file>`."""

from __future__ import annotations

import sys
from pathlib import Path


def _bench_directory() -> Path:
    here = Path.cwd() / "bench"
    if (here / "runner.py").is_file():
        return here
    source_tree = Path(__file__).resolve().parent.parent / "bench"
    if (source_tree / "runner.py").is_file():
        return source_tree
    raise SystemExit(
        "moafast bench: no bench/ directory found in the current directory or next to the moafast sources; "
        "the benchmarks ship with the source checkout: run this from a clone of the repository"
    )


TRAINABLE_METHODS = ("mah-dpo", "ham", "mavis-values")
GENERATING_METHODS = ("mavis",)


def _train(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="moafast train", description="Train a multi-objective alignment method.")
    parser.add_argument("method", choices=TRAINABLE_METHODS)
    parser.add_argument("--config", required=True, help="a .json or .yaml file of the method's config fields")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in output_dir")
    args = parser.parse_args(argv)
    if args.method == "mavis-values":
        from moafast.methods.mavis import MavisConfig, MavisValueTrainer

        config = MavisConfig.from_file(args.config)
        metrics = MavisValueTrainer(config).train()
        print(f"MAVIS values: {config.rounds} round(s) x {len(config.objectives)} objective(s) trained; last unit "
              f"mse {metrics.get('mse', float('nan')):.4f}" if metrics else "MAVIS values: every unit was already done")
        return 0
    if args.method == "ham":
        from moafast.methods.ham import HaMConfig, HaMTrainer

        config = HaMConfig.from_file(args.config)
        if args.resume:
            config.resume_from_checkpoint = "latest"
        metrics = HaMTrainer(config).train()
        print(f"HaM: {metrics.get('step', 0)} steps, last mini-batch hypervolume {metrics.get('hypervolume', 0.0):.4f}")
        return 0
    from moafast.methods.mah_dpo import MAHDPOConfig, MAHDPOTrainer

    config = MAHDPOConfig.from_file(args.config)
    if args.resume:
        config.resume_from_checkpoint = "latest"
    trainer = MAHDPOTrainer(config)
    trainer.train()
    if config.eval_objectives:
        results = trainer.evaluate()
        if trainer.accelerator.is_main_process:
            for name, values in results.items():
                print(f"{name}: " + ", ".join(f"{key} {value:.4f}" for key, value in values.items()))
    return 0


def _generate(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="moafast generate", description="Decode with a multi-objective method.")
    parser.add_argument("method", choices=GENERATING_METHODS)
    parser.add_argument("--config", required=True, help="the config the value models were trained with")
    parser.add_argument("--prompt", action="append", required=True, help="a prompt (repeat for a batch)")
    parser.add_argument("--weights", required=True, help="comma-separated objective weights, e.g. 0.7,0.3")
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--round", type=int, default=None, help="value models of this round (default: the last)")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM

    from moafast.methods import _loop as loop
    from moafast.methods.mavis import MavisConfig, ValueModel, mavis_generate, value_model_path

    config = MavisConfig.from_file(args.config)
    weights = [float(w) for w in args.weights.split(",")]
    if len(weights) != len(config.objectives):
        raise SystemExit(f"--weights: expected {len(config.objectives)} values ({', '.join(config.objectives)}), "
                         f"got {len(weights)}")
    round_index = config.rounds - 1 if args.round is None else args.round
    tokenizer = loop.load_tokenizer(config.tokenizer_name_or_path or config.model_name_or_path)
    tokenizer.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(config.model_name_or_path).eval()
    values = [ValueModel.from_pretrained(value_model_path(config.output_dir, round_index, name)).eval()
              for name in config.objectives]
    encoded = tokenizer(args.prompt, return_tensors="pt", padding=True, add_special_tokens=False)
    out = mavis_generate(policy, values, encoded["input_ids"], attention_mask=encoded["attention_mask"],
                         weights=torch.tensor([weights] * len(args.prompt)), beta=args.beta, top_k=config.top_k,
                         temperature=config.temperature, max_new_tokens=args.max_new_tokens or config.max_new_tokens,
                         seed=args.seed, eos_token_id=tokenizer.eos_token_id, pad_token_id=loop.pad_token_id(tokenizer))
    for prompt, sequence, log_ratio in zip(args.prompt, out.sequences, out.log_ratio):
        response = tokenizer.decode(sequence[encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"{prompt!r} -> {response!r} (log pi/pi_ref {float(log_ratio):.3f})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: moafast {bench,env,train,generate} ...\n"
              "  bench     run benchmarks against the peers (moafast bench --help)\n"
              "  env       print versions, compiled kernels and usable devices\n"
              "  train     train a method: moafast train {mah-dpo,ham,mavis-values} --config run.yaml "
              "(torchrun/accelerate for DDP)\n"
              "  generate  decode: moafast generate mavis --config run.yaml --prompt ... --weights 0.5,0.5 --beta 2")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        sys.path.insert(0, str(_bench_directory().parent))
        from bench.runner import main as bench_main

        return bench_main(rest)
    if command == "env":
        from moafast.env import main as env_main

        env_main()
        return 0
    if command == "train":
        return _train(rest)
    if command == "generate":
        return _generate(rest)
    print(f"moafast: unknown command {command!r}; expected bench, env, train or generate", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
