"""Attack throughput: `evaluate_model` vs a plain torchattacks loop, and the cost of every attack.

Part 1 (the issue's goal: ratio >= 0.95). Same trained small CNN, same Fashion-MNIST test images, same
batch size, in one process, timed in alternating rounds so that machine load hits both alike:

- plain loop: `adv = torchattacks.FGSM/PGD(model, ...)(x, y)` per batch, then one forward pass on `adv` to
  count correct predictions (no clean accuracy, no checks);
- `evaluate_model(model, x, y, [attack], [eps])`: clean accuracy, the zero-gradient check, the attack on
  the correctly classified inputs, the eps-ball and range checks, and the results table.

The ratio printed is (images/s of evaluate_model) / (images/s of the plain loop), the median over rounds,
from wall-clock time and from this process's CPU time (the latter is steadier on a shared machine; use
--threads 1 there). Further lines repeat it with several eps at once, where evaluate_model reuses the
clean pass.

Part 2: seconds per 1,000 images for each attack at one eps, through evaluate_model, with robust accuracy.

    .venv/bin/python evaluations/perf/attack_throughput.py                 # both parts
    .venv/bin/python evaluations/perf/attack_throughput.py --skip-cost      # part 1 only
    .venv/bin/python evaluations/perf/attack_throughput.py --cost-attacks fgsm,pgd,square --cost-n 200

The network is trained once (CE, 1000 steps) into runs/perf/small-cnn-ce and reused afterwards, or
taken from a finished run directory with --checkpoint (e.g. runs/cmp/runs/ce/seed0 of `robust-glo evaluate`).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torchattacks

from robust_glo.data import load_dataset
from robust_glo.robustness import evaluate_model, list_attacks
from robust_glo.training import TrainConfig, load_trained_model, train_run


def plain_loop(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, make_attack, batch_size: int) -> float:
    """Robust accuracy the way a plain torchattacks script computes it."""
    atk = make_attack(model)
    correct = 0
    for i in range(0, len(y), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = atk(xb, yb)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    return correct / len(y)


def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def compare(
    model, x, y, name: str, spec: str, eps_values: list[float], make_attack, batch_size: int, rounds: int
) -> None:
    wall = {"ours": [], "plain": []}
    cpu = {"ours": [], "plain": []}
    evaluate_model(model, x[:batch_size], y[:batch_size], [spec], eps_values, batch_size=batch_size)  # warm-up
    plain_loop(model, x[:batch_size], y[:batch_size], lambda m: make_attack(m, eps_values[0]), batch_size)
    for r in range(rounds):
        # Alternate which pipeline goes first, so drift in machine load does not favour either.
        for which in ("ours", "plain") if r % 2 == 0 else ("plain", "ours"):
            if which == "ours":
                w, c, table = timed(lambda: evaluate_model(model, x, y, [spec], eps_values, batch_size=batch_size))
            else:
                w, c, accs = timed(
                    lambda: [plain_loop(model, x, y, lambda m, e=e: make_attack(m, e), batch_size) for e in eps_values]
                )
            wall[which].append(w)
            cpu[which].append(c)
    wall_ratios = [p / o for p, o in zip(wall["plain"], wall["ours"])]
    cpu_ratios = [p / o for p, o in zip(cpu["plain"], cpu["ours"])]
    ours_acc = [float(table[(table.attack == spec) & (table.eps == e)]["accuracy"].item()) for e in eps_values]
    eps_text = ",".join(f"{e:g}" for e in eps_values)
    print(
        f"{name:<5} eps={eps_text:<14} n={len(y)}  evaluate_model {len(y) / statistics.median(wall['ours']):7.0f} img/s"
        f"  plain {len(y) / statistics.median(wall['plain']):7.0f} img/s  ratio (median of {rounds} rounds): "
        f"wall {statistics.median(wall_ratios):.3f}, CPU time {statistics.median(cpu_ratios):.3f}  "
        f"[wall rounds {' '.join(f'{r:.2f}' for r in wall_ratios)}; "
        f"CPU rounds {' '.join(f'{r:.2f}' for r in cpu_ratios)}]"
        f"  robust acc ours {', '.join(f'{a:.3f}' for a in ours_acc)} / plain {', '.join(f'{a:.3f}' for a in accs)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="test images for the throughput comparison")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--cost-attacks", default=",".join(list_attacks()))
    ap.add_argument("--cost-n", type=int, default=500, help="test images per attack for the cost table")
    ap.add_argument("--run-dir", default="runs/perf/small-cnn-ce", help="where the benchmark network is trained")
    ap.add_argument("--checkpoint", default=None, help="use this finished Fashion-MNIST run directory instead")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.checkpoint:
        model = load_trained_model(args.checkpoint).cpu().eval()
        origin = f"checkpoint {args.checkpoint}"
    else:
        result = train_run(
            TrainConfig.from_dict(
                dict(loss="ce", dataset="fashion-mnist", model="small-cnn", steps=1000, seed=0, device="cpu")
            ),
            Path(args.run_dir),
            progress=False,
        )
        model = result.model.cpu().eval()
        origin = "small-cnn trained with CE for 1000 steps"
    test = load_dataset("fashion-mnist").test
    x, y = test.images[: args.n].contiguous(), test.labels[: args.n].contiguous()
    print(
        f"{origin}; torch {torch.__version__}, torchattacks {torchattacks.__version__}, "
        f"{torch.get_num_threads()} threads"
    )

    steps = args.pgd_steps

    def fgsm(m, e):
        return torchattacks.FGSM(m, eps=e)

    def pgd(m, e):
        return torchattacks.PGD(m, eps=e, alpha=2.5 * e / steps, steps=steps, random_start=True)

    print("\n== throughput: evaluate_model vs a plain torchattacks loop (ratio = ours / plain images per second)")
    compare(model, x, y, "fgsm", "fgsm", [args.eps], fgsm, args.batch_size, args.rounds)
    compare(model, x, y, "pgd", f"pgd:steps={steps}", [args.eps], pgd, args.batch_size, args.rounds)
    many = [0.05, 0.1, 0.2]
    compare(model, x, y, "fgsm", "fgsm", many, fgsm, args.batch_size, max(1, args.rounds // 2))
    compare(model, x, y, "pgd", f"pgd:steps={steps}", many, pgd, args.batch_size, max(1, args.rounds // 2))

    if args.skip_cost:
        return
    print(
        f"\n== cost per 1,000 Fashion-MNIST images at eps={args.eps:g} (evaluate_model, n={args.cost_n}, "
        f"batch {args.batch_size}, whole call incl. clean pass)"
    )
    xc, yc = x[: args.cost_n], y[: args.cost_n]
    for attack in args.cost_attacks.split(","):
        seconds, cpu, table = timed(
            lambda attack=attack: evaluate_model(model, xc, yc, [attack], [args.eps], batch_size=args.batch_size)
        )
        row = table[(table.attack == attack) & (table.eps == args.eps)]
        clean = float(table[table.attack == "clean"]["accuracy"].item())
        print(
            f"{attack:<13} {1000 * seconds / len(yc):9.2f} s wall, {1000 * cpu / len(yc):9.2f} s CPU "
            f"per 1000 images   robust accuracy "
            f"{float(row['accuracy'].item()):.3f} (clean {clean:.3f})   reliable {bool(row['reliable'].item())}"
        )


if __name__ == "__main__":
    main()
