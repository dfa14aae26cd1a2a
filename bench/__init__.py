"""moafast's benchmarks: one `bench_<name>.py` per benchmark, run by `moafast bench` (bench/runner.py)."""
