"""card.json per evaluated network (#23 item 4) and the leaderboard `robust-glo report` gathers from them."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
import torch

from robust_glo.analysis import analyze_loss
from robust_glo.cli import main
from robust_glo.comparison import CompareConfig, evaluate_existing, layout, run_comparison
from robust_glo.comparison.cards import CARD_FILE, SCHEMA, read_cards
from robust_glo.comparison.leaderboard import leaderboard, ranking_budget
from robust_glo.utils import metadata

LOSSES, SEEDS = ["ce", "label_smoothing:0.2"], [0, 1]


def _config(**extra):
    # aa-reference only at eps 0.3, where the tiny networks fall at once (so it costs little): eps 0.05 is
    # not AutoAttack-verified (FGSM and PGD only), eps 0.3 is.
    return CompareConfig(
        dataset="digits",
        losses=LOSSES,
        seeds=SEEDS,
        steps=30,
        attacks=["fgsm", "pgd:steps=3", "aa-reference:min_eps=0.3"],
        eps=[0.0, 0.05, 0.3],
        test_size=40,
        diagnostics={"n": 8},
        device="cpu",
        **extra,
    )


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("cards") / "cmp"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's one-thread fixture
    try:
        run_comparison(_config(), out, echo=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    return out


def _card(out, loss, seed):
    return json.loads((layout.run_dir(out, loss, seed) / CARD_FILE).read_text())


def test_every_network_has_a_card_with_the_stored_numbers(compared):
    results = pd.read_csv(compared / "results.csv")
    diagnostics = pd.read_csv(compared / "diagnostics.csv")
    for loss in LOSSES:
        for seed in SEEDS:
            where = layout.run_dir(compared, loss, seed)
            card = _card(compared, loss, seed)
            metrics = json.loads((where / "metrics.json").read_text())
            rows = results[(results["loss"] == loss) & (results["seed"] == seed)]
            assert card["schema"] == SCHEMA
            assert card["network"] == {
                "kind": "trained",
                "loss": loss,
                "seed": seed,
                "dataset": "digits",
                "model": "digits-cnn",
            }
            # the loss and its effective target p* (cross-entropy pursues p -> 1: null without an error)
            assert card["loss"]["spec"] == loss and card["loss"]["analysis_error"] is None
            assert card["loss"]["effective_target"] == analyze_loss(loss, 10).effective_target
            # the recipe and the clean accuracy on the whole test split, from the training run
            assert card["training"]["seed"] == seed and card["training"]["recipe"]["steps"] == 30
            assert card["training"]["recipe"]["lr"] == json.loads((where / "config.json").read_text())["lr"]
            assert card["clean_accuracy"]["test_split"] == metrics["test_accuracy"]
            assert card["clean_accuracy"]["n_test"] == metrics["n_test"] == 360
            assert card["clean_accuracy"]["full_split"] is True
            clean = rows[rows["attack"] == "clean"].iloc[0]
            assert card["clean_accuracy"]["attacked"] == clean["accuracy"]
            assert card["clean_accuracy"]["n_attacked"] == 40
            # per threat model and budget: the worst case, verified or with what is missing
            worst = rows[(rows["attack"] == "worst") & (rows["eps"] > 0)].set_index("eps")
            entries = {e["eps"]: e for e in card["robustness"]}
            assert set(entries) == {0.05, 0.3}
            for eps, entry in entries.items():
                params = json.loads(worst.loc[eps, "params"])
                assert entry["threat_model"] == "Linf"
                assert entry["robust_accuracy"] == worst.loc[eps, "accuracy"]
                assert entry["attacks"] == params["over"] and entry["missing"] == params["missing"]
                assert entry["autoattack_verified"] is params["autoattack"]
                attack_rows = rows[(rows["eps"] == eps) & ~rows["attack"].isin(["clean", "worst"])]
                assert entry["per_attack"] == dict(zip(attack_rows["attack"], attack_rows["accuracy"]))
            assert entries[0.05]["autoattack_verified"] is False and entries[0.05]["autoattack_robust_accuracy"] is None
            assert entries[0.05]["attacks"] == ["fgsm", "pgd:steps=3"] and len(entries[0.05]["missing"]) == 4
            assert entries[0.3]["autoattack_verified"] is True and entries[0.3]["missing"] == []
            assert entries[0.3]["autoattack_robust_accuracy"] == worst.loc[0.3, "accuracy"]
            assert "AutoAttack (ε ≥ 0.3)" in entries[0.3]["attack_names"]
            assert set(entries[0.3]["diagnostics"]) >= {"more_effort", "unbounded", "gradients"}
            # the diagnostics and reliability flags as stored
            own = diagnostics[
                (diagnostics["loss"] == loss) & (diagnostics["seed"] == seed) & (diagnostics["check"] != "transfer")
            ]
            assert [d["check"] for d in card["diagnostics"]] == list(own["check"])
            assert [d["status"] for d in card["diagnostics"]] == list(own["status"])
            assert card["reliability"]["reliable"] == bool(rows["reliable"].all())
            assert len(card["reliability"]["checks"]) >= 8
            # the code and library versions that ran it
            assert set(card["code_version"]) == {"commit", "dirty"}
            commit = card["code_version"]["commit"]
            assert commit is None or (isinstance(commit, str) and len(commit) == 40)
            assert card["software_recorded_by"] == "evaluation"
            assert card["versions"]["torch"] and card["versions"]["torchattacks"]
            evaluation = json.loads((where / "evaluation.json").read_text())
            assert evaluation["code_version"] == card["code_version"]
            environment = json.loads((where / "environment.json").read_text())
            assert set(environment["code_version"]) == {"commit", "dirty"}
            assert card["training"]["code_version"] == environment["code_version"]


def test_a_reused_evaluation_gets_its_card(compared, tmp_path):
    out = tmp_path / "cmp"
    shutil.copytree(compared, out)
    before = _card(out, "ce", 0)
    # an evaluation stored before cards existed: no card, no code version in evaluation.json
    meta = layout.run_dir(out, "ce", 0) / "evaluation.json"
    record = json.loads(meta.read_text())
    del record["code_version"], record["versions"]
    meta.write_text(json.dumps(record))
    for path in out.rglob(CARD_FILE):
        path.unlink()
    lines: list[str] = []
    run_comparison(_config(), out, echo=lines.append)
    assert sum("reused training and evaluation" in line for line in lines) == len(LOSSES) * len(SEEDS)
    assert len(list(out.rglob(CARD_FILE))) == len(LOSSES) * len(SEEDS)
    after = _card(out, "ce", 0)
    assert after["software_recorded_by"] == "card"  # the process that reused it, not the one that ran it
    assert after["code_version"] == metadata.code_version()
    drop = ("code_version", "versions", "software_recorded_by")
    assert {k: v for k, v in after.items() if k not in drop} == {k: v for k, v in before.items() if k not in drop}
    assert _card(out, "ce", 1)["software_recorded_by"] == "evaluation"


def test_an_evaluated_checkpoint_gets_a_card_with_its_training_run(compared, tmp_path):
    run = layout.run_dir(compared, "label_smoothing:0.2", 1)
    config = CompareConfig(dataset="digits", attacks=["fgsm"], eps=[0.0, 0.1], test_size=40, device="cpu")
    evaluate_existing(config, tmp_path / "ckpt", checkpoints=[str(run)], echo=lambda _: None)
    (card,) = read_cards(tmp_path / "ckpt")
    assert card["network"]["kind"] == "checkpoint" and card["network"]["seed"] == 1
    assert card["clean_accuracy"]["test_split"] == json.loads((run / "metrics.json").read_text())["test_accuracy"]
    assert card["loss"]["effective_target"] == pytest.approx(0.82)
    (entry,) = card["robustness"]
    assert entry["eps"] == 0.1 and entry["autoattack_verified"] is False and entry["attacks"] == ["fgsm"]


def test_report_writes_the_leaderboard(compared, tmp_path, capsys):
    cards_only = tmp_path / "cards"
    shutil.copytree(compared / "runs", cards_only / "runs")  # no results.csv: the leaderboard alone
    assert main(["report", str(cards_only)]) == 0
    printed = capsys.readouterr().out
    board = pd.read_csv(cards_only / "leaderboard.csv")
    assert len(board) == len(LOSSES) * len(SEEDS)
    assert (board["budget"] == "Linf@0.3").all() and board["autoattack_verified"].all()
    assert list(board["rank"]) == [1, 2, 3, 4]
    # ranked by the verified robust accuracy, then clean accuracy
    order = list(zip(-board["robust_accuracy"], -board["clean_accuracy"]))
    assert order == sorted(order)
    for r in board.itertuples():
        card = _card(compared, r.loss, r.seed)
        (entry,) = [e for e in card["robustness"] if e["eps"] == 0.3]
        assert r.robust_accuracy == entry["robust_accuracy"]
        assert r.clean_accuracy == card["clean_accuracy"]["test_split"]
        assert r.attacks == ", ".join(entry["attack_names"])
    assert set(board["Linf@0.05 verified"]) == {False}
    markdown = (cards_only / "leaderboard.md").read_text()
    assert markdown.strip() in printed
    assert "the largest budget at which every network is AutoAttack-verified" in markdown
    assert "label_smoothing:0.2 | 0.820 | 2 |" in markdown and "ce | → 1 | 2 |" in markdown
    assert "Linf ε = 0.05: not AutoAttack-verified; worst case over FGSM, PGD-3; missing APGD-CE" in markdown


def _synthetic(loss, seed, clean, entries, dataset="digits"):
    return {
        "schema": SCHEMA,
        "network": {"kind": "trained", "loss": loss, "seed": seed, "dataset": dataset, "model": "m"},
        "loss": {"spec": loss, "name": loss, "effective_target": None, "analysis_error": None},
        "clean_accuracy": {"test_split": clean, "attacked": clean},
        "robustness": [
            {
                "threat_model": norm,
                "eps": eps,
                "robust_accuracy": acc,
                "autoattack_verified": verified,
                "attacks": ["x"],
                "attack_names": ["X"],
                "missing": [] if verified else ["APGD-T"],
                "diagnostics_passed": True,
            }
            for norm, eps, acc, verified in entries
        ],
        "reliability": {"reliable": True},
        "code_version": {"commit": None, "dirty": None},
        "path": f"{loss}/{seed}/card.json",
    }


def test_leaderboard_ranking_budget_and_order():
    cards = [
        # verified by everyone at 0.1 (L∞) and L2 1.0; only "b" is verified at 0.2; nobody at 0.3
        _synthetic("a", 0, 0.9, [("Linf", 0.1, 0.5, True), ("Linf", 0.2, 0.3, False), ("Linf", 0.3, 0.1, False)]),
        _synthetic("a", 1, 0.8, [("Linf", 0.1, 0.7, True), ("Linf", 0.2, 0.2, False), ("L2", 1.0, 0.6, True)]),
        _synthetic("b", 0, 0.7, [("Linf", 0.1, 0.6, True), ("Linf", 0.2, 0.4, True), ("L2", 1.0, 0.1, True)]),
        _synthetic("c", 0, 0.95, [("Linf", 0.1, 0.6, True)]),
    ]
    assert ranking_budget(cards) == (("Linf", 0.1), True)  # L∞ before L2, the largest ε everyone has
    board = leaderboard(cards)
    nets = board.networks
    assert list(zip(nets["loss"], nets["seed"])) == [("a", 1), ("c", 0), ("b", 0), ("a", 0)]  # ties: clean
    losses = board.losses.set_index("loss")
    assert list(board.losses["loss"]) == ["c", "a", "b"]  # equal robust accuracy: clean decides
    assert losses.loc["a", "robust_accuracy"] == pytest.approx(0.6)
    assert losses.loc["a", "robust_sd"] == pytest.approx(math.sqrt(0.02))
    assert math.isnan(losses.loc["b", "robust_sd"]) and losses.loc["a", "seeds"] == 2
    assert "60.0 ± 14.1" in board.markdown

    # nobody verified everywhere: the largest budget someone is verified at; unverified networks last
    partial = [cards[0], cards[2]]
    partial[0] = _synthetic("a", 0, 0.9, [("Linf", 0.1, 0.5, False), ("Linf", 0.2, 0.9, False)])
    assert ranking_budget(partial) == (("Linf", 0.2), False)
    board = leaderboard(partial)
    assert list(board.networks["loss"]) == ["b", "a"]  # b verified (0.4) before a's unverified 0.9
    assert "some networks are AutoAttack-verified" in board.markdown

    # nobody verified anywhere: the largest budget, with the worst case, said plainly
    plain = [_synthetic("a", 0, 0.9, [("Linf", 0.1, 0.5, False), ("L2", 2.0, 0.2, False)])]
    assert ranking_budget(plain) == (("Linf", 0.1), False)
    assert "No network is AutoAttack-verified at any budget" in leaderboard(plain).markdown


def test_code_version_without_git_or_outside_a_checkout(monkeypatch):
    current = metadata.code_version()
    assert set(current) == {"commit", "dirty"}
    monkeypatch.setattr(metadata.shutil, "which", lambda name: None)
    assert metadata.code_version() == {"commit": None, "dirty": None}
    monkeypatch.undo()
    # an installed copy inside some other checkout: that checkout's commit is not this code's
    monkeypatch.setattr(metadata, "_git", lambda checkout, *args: "/somewhere/else")
    assert metadata.code_version() == {"commit": None, "dirty": None}
    assert "code_version" in metadata.run_metadata(seed=0)
