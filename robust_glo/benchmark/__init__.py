"""Benchmark suites (the shipped ones in `robust_glo/suites/*.toml`) and the pipeline that runs them:
evolve -> train -> attack -> analyze -> report, each finished piece reused on a re-run.

>>> from robust_glo.benchmark import load_suite, run_benchmark
>>> run_benchmark(load_suite("quick"), "runs/quick")
"""

from robust_glo.benchmark.pipeline import STAGES, Benchmark, BenchmarkResult, run_benchmark
from robust_glo.benchmark.suite import EVOLVED, Suite, list_suites, load_suite, parse_suite, suite_path

__all__ = [
    "EVOLVED",
    "STAGES",
    "Benchmark",
    "BenchmarkResult",
    "Suite",
    "list_suites",
    "load_suite",
    "parse_suite",
    "run_benchmark",
    "suite_path",
]
