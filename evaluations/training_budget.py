"""How far from its plateau is a network trained for a given budget? Test accuracy against the step budget.

Each budget is a separate training run with the suite's recipe (the cosine schedule decays to zero at the
end of the budget, so "accuracy at budget B" means a run planned for B steps, not an intermediate point of
a longer run). Prints one row per (budget, seed) and, per budget, the mean and the gap to the largest
budget's mean.

    .venv/bin/python evaluations/training_budget.py --loss ce --budgets 250,500,1000,1500,2500,4000 --seeds 0
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from robust_glo.data import load_dataset
from robust_glo.training import TrainConfig, train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="ce")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--budgets", default="250,500,1000,1500,2500,4000", help="comma-separated SGD step budgets")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: leave a core for other work)")
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = load_dataset(args.dataset)
    rows = []
    for budget in budgets:
        for seed in seeds:
            config = TrainConfig.from_dict(
                {"loss": args.loss, "dataset": args.dataset, "model": args.model, "steps": budget, "seed": seed}
            )
            t0 = time.perf_counter()
            result = train_run(config, None, splits=splits, progress=False)
            rows.append(
                {
                    "loss": args.loss,
                    "budget": budget,
                    "seed": seed,
                    "status": result.status,
                    "val_accuracy": result.val_accuracy,
                    "test_accuracy": result.test_accuracy,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(
                f"budget {budget:>6} seed {seed}: test accuracy {result.test_accuracy:.4f} "
                f"(val {result.val_accuracy:.4f}), {rows[-1]['seconds']:.0f} s",
                flush=True,
            )
    table = pd.DataFrame(rows)
    means = table.groupby("budget")["test_accuracy"].mean()
    top = means.iloc[-1]
    print("\nbudget  mean test accuracy  gap to the largest budget (points)")
    for budget, mean in means.items():
        print(f"{budget:>6}  {mean:.4f}              {100 * (top - mean):+.2f}")
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
