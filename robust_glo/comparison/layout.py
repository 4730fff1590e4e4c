"""Where a comparison keeps its pieces, in one place (the benchmark asks here instead of re-deriving it).

config.json, environment.json           the comparison's resolved configuration, seeds, versions
runs/<loss-slug>/seed<k>/               a training run directory (see robust_glo.training.run) plus
    evaluation.csv                      its robustness rows (loss, seed, dataset, model + RESULT_COLUMNS)
    evaluation_flags.csv                its reliability checks
    evaluation_outcomes.csv             its per-image outcomes (see robust_glo.robustness.outcomes)
    evaluation_diagnostics.csv          its diagnostics (see robust_glo.robustness.diagnostics)
    evaluation.json                     what the evaluation ran (written last; redone when it changes)
checkpoints/<name>/                     the same evaluation files for an existing run directory
user/<name>/                            the same for a user model
transfer/seed<k>.csv, seed<k>.json     the transfer diagnostic of seed k (examples crafted on the
                                        transfer source's network, evaluated on every other network)
results.csv, flags.csv, outcomes.csv    every evaluation's rows, gathered
diagnostics.csv                         every evaluation's diagnostics and the transfer rows, gathered
summary.csv                             per loss x attack x eps (see docs/statistics.md)
"""

from __future__ import annotations

from pathlib import Path

from robust_glo.utils.parsing import spec_slug

EVAL_FILE, FLAGS_FILE, OUTCOMES_FILE = "evaluation.csv", "evaluation_flags.csv", "evaluation_outcomes.csv"
DIAGNOSTICS_FILE = "evaluation_diagnostics.csv"
EVAL_META = "evaluation.json"  # written last: its presence and key mark a finished evaluation


def loss_slug(spec: str) -> str:
    """A directory name for a loss spec."""
    return spec_slug(spec)


def run_dir(out: str | Path, spec: str, seed: int) -> Path:
    """The training run directory (and evaluation files) of (loss spec, seed) in comparison folder `out`."""
    return Path(out) / "runs" / loss_slug(spec) / f"seed{seed}"


def checkpoint_dir(out: str | Path, checkpoint: str | Path) -> Path:
    return Path(out) / "checkpoints" / loss_slug(str(Path(checkpoint).resolve()))


def user_dir(out: str | Path, spec: str) -> Path:
    return Path(out) / "user" / loss_slug(spec)


def transfer_files(out: str | Path, seed: int) -> tuple[Path, Path]:
    """The transfer diagnostic's table and key of seed `seed` in comparison folder `out`."""
    folder = Path(out) / "transfer"
    return folder / f"seed{seed}.csv", folder / f"seed{seed}.json"


def crafted_file(out: str | Path, seed: int) -> Path:
    """The transfer examples crafted on the source network of seed `seed` (with their key), written by
    that network's piece so that crafting runs in parallel with the other pieces."""
    return Path(out) / "transfer" / f"seed{seed}.crafted.pt"
