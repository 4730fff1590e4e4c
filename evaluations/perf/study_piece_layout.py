"""One attack piece of a finished benchmark, recomputed in both CPU memory layouts: what channels_last and
the all-targets `more_effort` APGD-T save on a real piece of that suite (its attacks, budgets and
diagnostics), and whether the outcomes agree.

The piece (`--loss`, `--seed`) is the benchmark's own trained network (`compare/runs/...`), evaluated with
the suite's comparison settings exactly as the attack stage evaluates it (`evaluate_and_store`: attacks,
then diagnostics), once contiguous and once channels_last (`ROBUST_GLO_CPU_LAYOUT`), into temporary folders:
the benchmark's own files are only read. Printed: each layout's attack and diagnostics seconds, the ratios,
and the share of (attack, budget, image) outcome bits that agree. One torch thread.

    OMP_NUM_THREADS=1 .venv/bin/python evaluations/perf/study_piece_layout.py --dir runs/std --loss ce --seed 3

Writes runs/perf/study_piece_layout.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import torch

from robust_glo.benchmark import Suite
from robust_glo.comparison import layout
from robust_glo.comparison.runner import comparison_splits
from robust_glo.comparison.store import evaluate_and_store
from robust_glo.errors import RobustGloError
from robust_glo.training import load_trained_model
from robust_glo.utils import cpu_bf16_support, run_metadata
from robust_glo.utils.device import LAYOUT_ENV

LAYOUTS = ("contiguous", "channels_last")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default="runs/std", help="a finished benchmark folder (its suite.json and compare/runs)")
    p.add_argument("--loss", default="ce", help="the piece's loss spec, as in the suite")
    p.add_argument("--seed", type=int, default=3, help="the piece's training seed")
    p.add_argument("--out", default="runs/perf/study_piece_layout.json", help="where the JSON results go")
    args = p.parse_args()
    root = Path(args.dir)
    if not (root / "suite.json").is_file():
        p.error(f"{str(root)!r} is not a benchmark folder (no suite.json); give --dir a benchmark's output folder")
    torch.set_num_threads(1)
    try:
        suite = Suite.from_dict(json.loads((root / "suite.json").read_text()))
        config = suite.compare_config([args.loss]).validated()
        run_dir = layout.run_dir(root / "compare", args.loss, args.seed)
    except RobustGloError as exc:
        p.error(str(exc))
    if not (run_dir / "model.pt").is_file():
        p.error(f"no trained network in {str(run_dir)!r}; give a --loss and --seed of that benchmark's grid")
    _, attacked = comparison_splits(config)
    ident = {"loss": args.loss, "seed": args.seed, "dataset": config.dataset, "model": config.model}
    print(
        f"{root} {args.loss} seed {args.seed}: {len(attacked.labels)} images, attacks {', '.join(config.attacks)}; "
        f"CPU dispatch {cpu_bf16_support()['cpu_capability']}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    runs = {}
    for name in LAYOUTS:
        os.environ[LAYOUT_ENV] = name
        model = load_trained_model(run_dir)
        with tempfile.TemporaryDirectory() as tmp:
            files = evaluate_and_store(
                model, attacked, ident, Path(tmp), config, {"layout": name}, train_loss=args.loss
            )
            record = json.loads((Path(tmp) / "evaluation.json").read_text())
        runs[name] = {
            "attack_seconds": record["attack_seconds"],
            "diagnostics_seconds": record["diagnostics_seconds"],
            "outcomes": files.outcomes,
            "diagnostics": files.diagnostics,
        }
        print(
            f"{name}: attacks {record['attack_seconds']:.1f} s, diagnostics {record['diagnostics_seconds']:.1f} s",
            flush=True,
        )
    a, b = runs["contiguous"], runs["channels_last"]
    merged = pd.merge(a["outcomes"], b["outcomes"], on=["attack", "eps"], suffixes=("_c", "_cl"))
    # outcome bits are stored as hex (one bit per image, `robust_glo.robustness.outcomes`)
    bits = int(merged["n_c"].sum())
    differ = sum(bin(int(x, 16) ^ int(y, 16)).count("1") for x, y in zip(merged["bits_c"], merged["bits_cl"]))
    same = bits - differ
    status = pd.merge(
        a["diagnostics"][["check", "norm", "eps", "status"]],
        b["diagnostics"][["check", "norm", "eps", "status"]],
        on=["check", "norm", "eps"],
        suffixes=("_c", "_cl"),
    )
    ratio = {part: a[f"{part}_seconds"] / max(b[f"{part}_seconds"], 1e-9) for part in ("attack", "diagnostics")}
    total = (a["attack_seconds"] + a["diagnostics_seconds"]) / max(b["attack_seconds"] + b["diagnostics_seconds"], 1e-9)
    summary = {
        "args": vars(args),
        "seconds": {
            k: {"attack": v["attack_seconds"], "diagnostics": v["diagnostics_seconds"]} for k, v in runs.items()
        },
        "ratio": {**ratio, "piece": total},
        "outcome_bits_agree": same / max(bits, 1),
        "outcome_bits": bits,
        "diagnostic_statuses_agree": int((status["status_c"] == status["status_cl"]).sum()),
        "diagnostic_rows": len(status),
        "load_end": os.getloadavg()[0],
        "environment": run_metadata(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, default=str))
    print(
        f"channels_last / contiguous: attacks {ratio['attack']:.2f}x, diagnostics {ratio['diagnostics']:.2f}x, "
        f"the piece {total:.2f}x; outcome bits agree on {summary['outcome_bits_agree']:.2%} of {bits:,}; "
        f"diagnostic statuses agree on {summary['diagnostic_statuses_agree']} of {len(status)}"
    )
    print(f"load average {summary['load_end']:.2f} at the end; wrote {args.out}")


if __name__ == "__main__":
    main()
