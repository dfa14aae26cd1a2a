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


TRAINABLE_METHODS = ("mah-dpo", "ham")


def _train(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="moafast train", description="Train a multi-objective alignment method.")
    parser.add_argument("method", choices=TRAINABLE_METHODS)
    parser.add_argument("--config", required=True, help="a .json or .yaml file of the method's config fields")
    parser.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in output_dir")
    args = parser.parse_args(argv)
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: moafast {bench,env,train} ...\n  bench  run benchmarks against the peers (moafast bench --help)\n"
              "  env    print versions, compiled kernels and usable devices\n"
              "  train  train a method: moafast train {mah-dpo,ham} --config run.yaml (torchrun/accelerate for DDP)")
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
    print(f"moafast: unknown command {command!r}; expected bench, env or train", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
