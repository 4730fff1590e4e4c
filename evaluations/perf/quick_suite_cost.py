"""Where the quick suite's time goes, and what the CPU defaults save: the quick suite run twice, one arm after
the other, on this machine (run it on an otherwise idle CPU).

- `before`: the settings the quick suite ran with until the CPU defaults were measured: every piece in this
  process at all torch threads (`--backend local`), validation in batches of 1,000, the evolution flat
  (every accepted candidate trained the full budget);
- `after`: `robust-glo benchmark quick` exactly as the README gives it: the suite file as committed and the
  current defaults (`--backend auto`: one one-thread Ray task per core on a multi-core CPU; eval batch 250).

Each arm is a fresh benchmark directory run by the `robust-glo benchmark` command itself, so the `after`
directory is the main job's real output (its report can be committed). Printed, from each arm's
stages.json: wall seconds per stage, the whole, and the ratio before / after, measured in this one run.

    .venv/bin/python evaluations/perf/quick_suite_cost.py                  # both arms, ~45 min on 2 cores
    .venv/bin/python evaluations/perf/quick_suite_cost.py --smoke          # a tiny digits suite (tested)

A finished arm is not run again (its arm.json is read back), so an interrupted run resumes with the arm in
flight; pass a fresh --out to measure again. Writes --out/quick_suite_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from robust_glo.utils import run_metadata

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "evaluations" / "quick.toml"
STAGES = ("evolve", "train", "attack", "analyze", "report")

# The smoke suite: the quick suite's shape on digits, in seconds.
SMOKE = """
[suite]
name = "quick-smoke"
dataset = "digits"
model = "mlp"
device = "cpu"

[evolve]
generations = 1
popsize = 4
steps = 20
topk = 1
reeval_seeds = 1
{fidelity}
[train]
losses = ["ce", "evolved"]
seeds = 1
steps = 20

[attack]
attacks = ["fgsm", "pgd:steps=2"]
eps = [0, 0.1]
n = 40

[analyze]
enabled = false
"""


def _before(text: str) -> str:
    """The suite file with the old settings: a flat evolution, validation in batches of 1,000."""
    text = re.sub(r"(?m)^(fidelity|eta|rungs)\s*=.*\n", "", text)
    text = re.sub(
        r"(?m)^\[evolve\][^\n]*\n", lambda m: m.group(0) + 'fidelity = "flat"\neval_batch_size = 1000\n', text
    )
    return re.sub(r"(?m)^\[train\][^\n]*\n", lambda m: m.group(0) + "eval_batch_size = 1000\n", text)


def _run_arm(name: str, suite: Path | str, out: Path, extra: list[str]) -> dict:
    """`robust-glo benchmark SUITE --out OUT` in a fresh process (in the repository root, so that a suite name
    such as "quick" is the README's command); its stage seconds from stages.json."""
    done = out / "arm.json"
    if done.is_file():
        print(f"{name}: finished earlier, read from {done}", flush=True)
        return json.loads(done.read_text())
    cmd = [sys.executable, "-m", "robust_glo", "benchmark", str(suite), "--out", str(out / "bench"), "--quiet", *extra]
    print(f"{name}: {' '.join(cmd[2:])}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    stages = json.loads((out / "bench" / "stages.json").read_text())["stages"]
    arm = {
        "command": " ".join(["robust-glo", *cmd[3:]]),
        "wall_seconds": wall,
        "stage_seconds": {s: stages[s]["last_seconds"] for s in STAGES if s in stages},
    }
    done.write_text(json.dumps(arm, indent=2))
    return arm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default="runs/perf/quick_suite_cost")
    args = p.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    text = SMOKE.format(fidelity='fidelity = "halving"\neta = 2\nrungs = 2\n') if args.smoke else SUITE.read_text()
    before_suite, after_suite = out / "before.toml", out / "after.toml"
    before_suite.write_text(_before(text))
    after_suite.write_text(text)
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    arms = {
        "before": _run_arm("before", before_suite, out / "before", ["--backend", "local"]),
        "after": _run_arm("after", after_suite if args.smoke else "quick", out / "after", []),
    }
    print(f"{'stage':8s} {'before (s)':>11s} {'after (s)':>10s} {'before/after':>13s}")
    for stage in STAGES:
        b, a = (arms[k]["stage_seconds"].get(stage) for k in ("before", "after"))
        if b is not None and a is not None:
            print(f"{stage:8s} {b:11.1f} {a:10.1f} {b / a:12.2f}x")
    b, a = (arms[k]["wall_seconds"] for k in ("before", "after"))
    print(f"{'whole':8s} {b:11.1f} {a:10.1f} {b / a:12.2f}x  (process wall time, start-up included)")
    summary = {"arms": arms, "ratio_whole": b / a, "load_end": os.getloadavg()[0], "environment": run_metadata()}
    (out / "quick_suite_cost.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"load average {summary['load_end']:.2f} at the end; wrote {out / 'quick_suite_cost.json'}")


if __name__ == "__main__":
    main()
