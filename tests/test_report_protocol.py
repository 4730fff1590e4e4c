"""The report's "The paper's protocol beside the strict one" section: per loss and budget, the difference to
the baseline under FGSM on the network's own training loss (the TaylorGLO paper's protocol), FGSM on
cross-entropy and the worst case, read from the statistics; kept = (c) / (a), shown only where (a) is a
significant gain and (c) is AutoAttack-verified with every diagnostic passed; no section without the
`fgsm:loss=train` column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from synthetic_results import write_outcome_study

from robust_glo.comparison import CompareConfig, run_comparison
from robust_glo.reporting import build_report
from robust_glo.reporting import evidence as E
from robust_glo.reporting import protocol as P
from robust_glo.reporting import verdict as V
from robust_glo.reporting.tables import diff_cell
from robust_glo.robustness.attacks.coverage import Coverage

N = 600
SEEDS = (0, 1, 2, 3, 4)
EPS = (0.1, 0.2)
PAPER, FGSM, PGD = "fgsm:loss=train", "fgsm", "pgd:steps=3"
# loss -> (clean, {attack: robust accuracy at each eps of EPS}); every network's inputs share one difficulty
# per image, so the per-input worst case is the weakest attack's (PGD here).
TRUTH = {
    "ce": (0.90, {PAPER: (0.30, 0.20), FGSM: (0.30, 0.20), PGD: (0.10, 0.05)}),
    # a large gain under the paper's protocol, almost none left under the worst case
    "baikal": (0.88, {PAPER: (0.70, 0.60), FGSM: (0.40, 0.30), PGD: (0.11, 0.055)}),
    # a gain the worst case keeps
    "label_smoothing:0.5": (0.89, {PAPER: (0.50, 0.40), FGSM: (0.45, 0.35), PGD: (0.30, 0.20)}),
    # less robust even under the paper's protocol: no gain to keep
    "sq": (0.87, {PAPER: (0.20, 0.10), FGSM: (0.20, 0.10), PGD: (0.04, 0.02)}),
    # a mean gain under the paper's protocol that swings by seed (SWING): not significant, so no ratio
    "poly1": (0.90, {PAPER: (0.33, 0.23), FGSM: (0.30, 0.20), PGD: (0.10, 0.05)}),
}
SWING = {("poly1", PAPER): 0.2}  # added on even seeds, taken off on odd ones


def write_study(root, *, paper: bool = True) -> None:
    """results.csv, outcomes.csv and suite.json of a study that ran FGSM on cross-entropy, PGD-3 and (with
    `paper`) FGSM on each network's own training loss."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shared = {seed: rng.random(N) for seed in SEEDS}
    cells = []
    for loss, (pc, robust) in TRUTH.items():
        for seed in SEEDS:
            u = np.clip(shared[seed] + rng.normal(0, 0.03, N), 0, 1)
            attacks = {
                a: tuple(x + (-1) ** seed * SWING.get((loss, a), 0.0) for x in r)
                for a, r in robust.items()
                if paper or a != PAPER
            }
            here = [("clean", 0.0, u < pc), ("worst", 0.0, u < pc)] + [(a, 0.0, u < pc) for a in attacks]
            for k, eps in enumerate(EPS):
                here += [(a, eps, u < r[k]) for a, r in attacks.items()]
                here.append(("worst", eps, u < min(r[k] for r in attacks.values())))
            cells += [(loss, seed, attack, eps, bits) for attack, eps, bits in here]
    write_outcome_study(root, cells, "protocol")


def _section(md: str) -> str:
    return md.split(f"\n## {P.TITLE}\n", 1)[1].split("\n## ", 1)[0]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    write_study(root)
    paths = build_report(root)
    md = paths.markdown.read_text()
    summary = pd.read_csv(paths.summary)
    return md, _section(md), summary, paths


ENSEMBLE = ("apgd-ce", "apgd-t", "fab-t", "square:n_queries=5000")


def write_diagnostics(root, failing=()) -> None:
    """diagnostics.csv: every blocking check judged and passed on every seed of every loss at every budget,
    except the (loss, check) pairs in `failing`."""
    rows = []
    for loss in TRUTH:
        for seed in SEEDS:
            base = {"loss": loss, "seed": seed, "value": 0.0, "threshold": 0.02, "n": N, "detail": ""}
            rows.append(base | {"check": "gradients", "norm": "", "eps": "", "status": "pass"})
            for eps in EPS:
                for check in ("more_effort", "unbounded", "transfer"):
                    if check == "transfer" and loss == "ce":
                        continue  # the baseline is the transfer source
                    status = "fail" if (loss, check) in failing else "pass"
                    rows.append(base | {"check": check, "norm": "Linf", "eps": eps, "status": status})
    pd.DataFrame(rows).to_csv(root / "diagnostics.csv", index=False)


@pytest.fixture(scope="module")
def verified_study(tmp_path_factory):
    """The same study with its worst case AutoAttack-verified at every budget and every diagnostic passed,
    except baikal's transfer check at every budget."""
    root = tmp_path_factory.mktemp("protocol-verified")
    write_study(root)
    write_diagnostics(root, failing={("poly1", "transfer")})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(E, "report_coverage", lambda inputs: {("linf", e): Coverage(True, ENSEMBLE, ()) for e in EPS})
        paths = build_report(root)
    md = paths.markdown.read_text()
    return md, _section(md), pd.read_csv(paths.summary)


def _table(section: str) -> dict[tuple[str, str], list[str]]:
    """The section's table: (loss, budget) -> (a), (b), (c), worst case, kept, (a) - (c)."""
    out = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and len(cells) == 8 and cells[1].startswith("ε = "):
            out[cells[0], cells[1]] = cells[2:6] + [cells[7], cells[6]]
    return out


def _row(summary: pd.DataFrame, loss: str, attack: str, eps: float) -> dict:
    rows = summary[(summary["loss"] == loss) & (summary["attack"] == attack) & np.isclose(summary["eps"], eps)]
    assert len(rows) == 1
    return rows.iloc[0].to_dict()


def test_the_numbers_are_the_statistics_differences(study):
    _, section, summary, _ = study
    table = _table(section)
    assert set(table) == {(loss, f"ε = {eps:g}") for loss in TRUTH if loss != "ce" for eps in EPS}
    for (loss, budget), (a, b, c, worst, kept, gap) in table.items():
        eps = float(budget.split("= ")[1])
        paper, ce, strict = (_row(summary, loss, x, eps) for x in (PAPER, FGSM, "worst"))
        assert paper["family"] == "secondary" and ce["family"] == "secondary" and strict["family"] == "primary"
        assert (a, b, c) == (diff_cell(paper), diff_cell(ce), diff_cell(strict))
        assert worst == "not verified against AutoAttack (worst case of: FGSM (own training loss), FGSM, PGD-3)"
        assert gap.startswith(f"{100 * (paper['diff'] - strict['diff']):+.1f} [")  # (a) - (c), tested directly
        # (c) is not AutoAttack-verified anywhere in this study: kept is never shown, and says why
        if P.evidence(paper) == "gain":
            assert kept == P.NOT_VERIFIED
        else:
            assert kept == f"{P.NO_GAIN}; {P.NOT_VERIFIED}"


def test_kept_is_shown_only_for_a_significant_gain_and_a_verified_counted_worst_case(verified_study):
    _, section, summary = verified_study
    table = _table(section)
    for eps in EPS:
        budget = f"ε = {eps:g}"
        assert all(row[3] == "AutoAttack-verified" for row in table.values())
        ls = table["label_smoothing:0.5", budget][4]
        baikal = table["baikal", budget][4]
        assert 50 <= int(ls.rstrip("%")) <= 150  # most of the gain survives
        assert 0 <= int(baikal.split("%")[0]) < 15  # little of it does
        for loss in ("label_smoothing:0.5", "baikal"):
            paper, strict = _row(summary, loss, PAPER, eps), _row(summary, loss, "worst", eps)
            assert P.evidence(paper) == "gain"
            share = f"{100 * strict['diff'] / paper['diff']:.0f}%"
            noise = "" if P.evidence(strict) == "gain" else f" ({P.NOISY_WORST})"
            assert table[loss, budget][4] == share + noise
        assert P.NOISY_WORST not in ls and P.NOISY_WORST in baikal  # Baikal's strict difference is noise
        assert table["sq", budget][4] == P.NO_GAIN
        # a positive paper-protocol difference that is not significant: a ratio of noise, not shown; and poly1
        # failed a blocking diagnostic, which the verdict's rule would not count either
        paper = _row(summary, "poly1", PAPER, eps)
        assert paper["diff"] > 0.02 and P.evidence(paper) == ""
        assert table["poly1", budget][4] == f"{P.NO_GAIN}; {P.NOT_DIAGNOSED}"
    assert "not capped: a value above 100% means the worst case shows a larger difference than (a)" in section
    assert "a ratio of two mean differences without an interval of its own" in section


def test_kept_and_the_sentences_claim_what_the_intervals_support(study):
    _, section, summary, _ = study
    table = _table(section)
    for eps in EPS:
        budget = f"ε = {eps:g}"
        assert table["sq", budget][4] == f"{P.NO_GAIN}; {P.NOT_VERIFIED}"
    bullets = {line.split("**")[1]: line for line in section.splitlines() if line.startswith("- **")}
    assert set(bullets) == {"baikal", "label_smoothing:0.5", "sq", "poly1"}
    for loss, text in bullets.items():
        assert text.count(".") >= 1 and text.startswith(f"- **{loss}** against ce: ")
        a_n = int((summary["family"] == "secondary").sum())
        c_n = int((summary["family"] == "primary").sum())
        for eps in EPS:
            a, c = _row(summary, loss, PAPER, eps), _row(summary, loss, "worst", eps)
            clause = text.split(f"at ε = {eps:g} ", 1)[1].split("; at ε", 1)[0]
            ea, ec = P.evidence(a), P.evidence(c)
            assert ("shows a gain of" in clause.split(",")[0]) == (ea == "gain")
            assert ("less robust even under the paper's protocol" in clause) == (ea == "loss")
            if ea == "gain":
                assert ("keeps a gain of" in clause) == (ec == "gain")
                no_evidence = ec == "" and not V.interval_excludes_zero(c)
                assert ("no evidence that any of it survives" in clause) == no_evidence
            if ec == "gain":
                assert "%" not in clause  # (c) is not verified: no share of (a) is claimed
            # an interval clear of 0 without a significant corrected p: said so, never "no evidence"
            for values, n in ((a, a_n), (c, c_n)):
                if P.evidence(values) == "" and V.interval_excludes_zero(values):
                    assert f"not significant after Holm over {n} comparisons (its per-comparison" in clause
            assert "worst case (not verified against AutoAttack" in clause
            if ec:  # a worst-case difference says why it is not counted (the verdict's rule)
                assert "; not counted: AutoAttack incomplete" in clause
            assert f"{100 * a['diff']:+.1f} points [{100 * a['diff_ci_low']:+.1f}, " in clause
    # the designed study: Baikal's paper-protocol gain is real, label smoothing keeps a real gain, sq loses
    assert all(P.evidence(_row(summary, "baikal", PAPER, e)) == "gain" for e in EPS)
    assert all(P.evidence(_row(summary, "label_smoothing:0.5", "worst", e)) == "gain" for e in EPS)
    assert all(P.evidence(_row(summary, "sq", PAPER, e)) == "loss" for e in EPS)


def test_the_prose_says_the_paper_protocol_never_stands_behind_a_claim(study):
    md, section, _, paths = study
    assert "(a) is a weaker attack" in section and "never stands behind a claim" in section
    assert f"[{P.TITLE}](#{P.ANCHOR})" in md  # in the contents and in the attacks caveat
    assert "except FGSM (own training loss) (the paper's protocol" in md
    assert "never the network's training loss" not in md
    html = paths.html.read_text()
    assert f'<section id="{P.ANCHOR}">' in html


def test_no_section_without_the_column(tmp_path):
    write_study(tmp_path, paper=False)
    paths = build_report(tmp_path)
    md = paths.markdown.read_text()
    assert P.TITLE not in md
    assert "never the network's training loss" in md


def test_a_digits_comparison_gets_the_section_from_its_own_statistics(tmp_path):
    # As `robust-glo report DIR` builds it from a comparison folder: the networks really trained and attacked.
    config = CompareConfig(
        dataset="digits",
        losses=["ce", "label_smoothing:0.5", "baikal"],
        seeds=[0],
        steps=40,
        attacks=["fgsm", PAPER, "pgd:steps=3"],
        eps=[0.0, 0.1],
        test_size=60,
        diagnostics={"n": 0},
        device="cpu",
    )
    run_comparison(config, tmp_path / "cmp", echo=lambda _: None)
    paths = build_report(tmp_path / "cmp")
    section = _section(paths.markdown.read_text())
    summary = pd.read_csv(paths.summary)
    table = _table(section)
    assert set(table) == {("label_smoothing:0.5", "ε = 0.1"), ("baikal", "ε = 0.1")}
    for (loss, _), (a, b, c, worst, kept, gap) in table.items():
        assert gap == "—" or gap.count("[") == 1  # (a) - (c), from the paired bootstrap
        paper, ce, strict = (_row(summary, loss, x, 0.1) for x in (PAPER, FGSM, "worst"))
        values = [P._values(r, strict, V.family_sizes(summary)) for r in (paper, ce, strict)]
        assert (a, b, c) == tuple(diff_cell(v | {"diff": r["diff"]}) for v, r in zip(values, (paper, ce, strict)))
        assert worst.startswith("not verified against AutoAttack (worst case of: ")
        gain = P.evidence(values[0]) == "gain"
        assert kept == (P.NOT_VERIFIED if gain else f"{P.NO_GAIN}; {P.NOT_VERIFIED}")
    assert section.count("- **") == 2


# ------------------------------------------------------------------------------------------ units


def _summary_row(loss, attack, eps, diff, p=0.01, significant=True, family="secondary"):
    return {
        "loss": loss,
        "attack": attack,
        "eps": eps,
        "diff": diff,
        "diff_ci_low": diff - 0.02,
        "diff_ci_high": diff + 0.02,
        "p_adjusted": p,
        "p_at_floor": False,
        "significant": significant,
        "family": family,
    }


def test_rows_take_coverage_a_missing_cross_entropy_fgsm_and_the_worst_cases_p():
    summary = pd.DataFrame(
        [
            _summary_row("ce", PAPER, 0.1, math.nan, math.nan, False, ""),
            _summary_row("ce", "worst", 0.1, math.nan, math.nan, False, ""),
            _summary_row("x", PAPER, 0.1, 0.20),
            # outcomes equal to the worst case's: in no family, it takes the worst case's p
            _summary_row("x", "worst", 0.1, 0.05, 0.003, True, "primary"),
            _summary_row("x", PAPER, 0.3, -0.01, 0.5, False),  # no worst case here: no row
        ]
    )
    verified = {("linf", 0.1): Coverage(True, ("aa-reference",), ())}
    rows = P.protocol_rows(summary, "ce", [PAPER, "aa-reference"], verified)
    assert len(rows) == 1
    r = rows.iloc[0].to_dict()
    assert r["ce_attack"] is None and r["verified"] and r["ran"] == "AutoAttack"
    # verified, but no diagnostics judged: the worst case would not count, so neither is kept shown
    assert math.isnan(r["kept"])
    table = P.protocol_table(rows, {})
    assert table.iloc[0]["(b) FGSM, cross-entropy: Δ (pts)"] == "not run"
    assert table.iloc[0]["worst case"] == "AutoAttack-verified"
    assert table.iloc[0]["kept (c)/(a)"] == P.NOT_DIAGNOSED
    (sentence,) = P.protocol_sentences(rows, {}, "ce")
    assert "keeps a gain of +5.0 points [+3.0, +7.0]" in sentence and "%" not in sentence
    # verified, but no diagnostics were judged: the verdict's rule does not count it, and says why
    assert "worst case (AutoAttack-verified; not counted: x diagnostics not run: " in sentence
    judged = pd.DataFrame(
        [
            {"loss": loss, "seed": 0, "check": check, "norm": norm, "eps": eps, "status": "pass"}
            for loss in ("x", "ce")
            for check, norm, eps in (
                ("gradients", "", math.nan),
                ("more_effort", "Linf", 0.1),
                ("unbounded", "Linf", 0.1),
            )
        ]
        + [{"loss": "x", "seed": 0, "check": "transfer", "norm": "Linf", "eps": 0.1, "status": "pass"}]
    )
    rows_judged = P.protocol_rows(summary, "ce", [PAPER, "aa-reference"], verified, judged)
    assert rows_judged.iloc[0]["not_counted"] == ""
    assert math.isclose(rows_judged.iloc[0]["kept"], 0.25)
    assert P.protocol_table(rows_judged, {}).iloc[0]["kept (c)/(a)"] == "25%"
    (sentence,) = P.protocol_sentences(rows_judged, {}, "ce")
    assert "worst case (AutoAttack-verified) keeps a gain of +5.0 points [+3.0, +7.0], 25% of it" in sentence
    # unverified: (c) not verified
    unverified = {("linf", 0.1): Coverage(False, ("fgsm",), ("APGD-CE",))}
    rows_unverified = P.protocol_rows(summary, "ce", [PAPER, "fgsm"], unverified, judged)
    assert P.protocol_table(rows_unverified, {}).iloc[0]["kept (c)/(a)"] == P.NOT_VERIFIED
    # not capped: a worst case that shows more than (a) gives a share above 100%
    larger = summary.copy()
    larger.loc[3, ["diff", "diff_ci_low", "diff_ci_high"]] = [0.3, 0.28, 0.32]
    rows_larger = P.protocol_rows(larger, "ce", [PAPER, "aa-reference"], verified, judged)
    assert P.protocol_table(rows_larger, {}).iloc[0]["kept (c)/(a)"] == "150%"
    # (c) not itself significant: the share is shown, and says it divides noise by (a)
    noisy = summary.copy()
    noisy.loc[3, ["diff", "diff_ci_low", "diff_ci_high", "p_adjusted", "significant"]] = [0.02, -0.01, 0.05, 0.4, False]
    rows_noisy_worst = P.protocol_rows(noisy, "ce", [PAPER, "aa-reference"], verified, judged)
    assert P.protocol_table(rows_noisy_worst, {}).iloc[0]["kept (c)/(a)"] == f"10% ({P.NOISY_WORST})"

    # the same positive (a), its interval above zero but not significant after the correction: no ratio of
    # noise (the test is `evidence`'s), and the sentence says "not significant after Holm", not "no evidence"
    unsure = summary.copy()
    unsure.loc[2, ["p_adjusted", "significant"]] = [0.2, False]
    rows_unsure = P.protocol_rows(unsure, "ce", [PAPER, "aa-reference"], verified, judged)
    assert math.isnan(rows_unsure.iloc[0]["kept"])
    assert P.protocol_table(rows_unsure, {}).iloc[0]["kept (c)/(a)"] == P.NO_GAIN
    (sentence,) = P.protocol_sentences(rows_unsure, {}, "ce")
    assert (
        "the paper's protocol shows +20.0 points [+18.0, +22.0], not significant after Holm over 2 comparisons "
        "(its per-comparison interval excludes 0)" in sentence
    )
    assert "no evidence" not in sentence and "%" not in sentence
    noisy = unsure.copy()
    noisy.loc[2, "diff_ci_low"] = -0.01
    rows_noisy = P.protocol_rows(noisy, "ce", [PAPER, "aa-reference"], verified, judged)
    assert math.isnan(rows_noisy.iloc[0]["kept"])
    (sentence,) = P.protocol_sentences(rows_noisy, {}, "ce")
    assert "the paper's protocol itself shows no evidence of a gain (+20.0 points" in sentence
    # a worst case whose interval excludes 0 while its corrected p does not reach alpha
    weak = summary.copy()
    weak.loc[3, ["p_adjusted", "significant"]] = [0.3, False]
    (sentence,) = P.protocol_sentences(P.protocol_rows(weak, "ce", [PAPER, "aa-reference"], verified, judged), {}, "ce")
    assert (
        "but under the worst case (AutoAttack-verified) the difference is +5.0 points [+3.0, +7.0], not "
        "significant after Holm over 1 comparison (its per-comparison interval excludes 0)" in sentence
    )

    summary.loc[3, "family"] = ""
    summary.loc[3, ["p_adjusted", "significant"]] = [math.nan, False]
    summary.loc[2, "family"] = ""
    summary.loc[2, ["p_adjusted", "significant"]] = [math.nan, False]
    worst = summary.loc[3].to_dict() | {"p_adjusted": 0.004, "significant": True, "family": "primary"}
    values = P._values(summary.loc[2].to_dict(), worst, {"": 5, "primary": 3})
    assert values["p_adjusted"] == 0.004 and values["significant"] and values["n_family"] == 3


def test_no_gain_to_keep_and_no_evidence_without_significance():
    assert math.isnan(P.kept(0.0, 0.1)) and math.isnan(P.kept(-0.1, -0.2)) and P.kept(0.2, 0.3) == pytest.approx(1.5)
    assert P.evidence({"diff": 0.1, "diff_ci_low": 0.05, "diff_ci_high": 0.15, "significant": True}) == "gain"
    assert P.evidence({"diff": 0.1, "diff_ci_low": -0.01, "diff_ci_high": 0.2, "significant": True}) == ""
    assert P.evidence({"diff": 0.1, "diff_ci_low": 0.05, "diff_ci_high": 0.15, "significant": False}) == ""
    assert P.evidence({"diff": -0.1, "diff_ci_low": -0.2, "diff_ci_high": -0.05, "significant": True}) == "loss"


def test_paper_attacks_and_their_cross_entropy_partner():
    late = "fgsm:loss=train:min_eps=0.1"
    attacks = ["pgd", "fgsm:min_eps=0.1", "fgsm", PAPER, late, "apgd-ce"]
    assert P.paper_attacks(attacks) == [PAPER, late]
    assert P.cross_entropy_partner(PAPER, attacks) == "fgsm"
    assert P.cross_entropy_partner(late, attacks) == "fgsm:min_eps=0.1"
    assert P.cross_entropy_partner(late, ["fgsm", late]) == "fgsm"
    assert P.cross_entropy_partner(PAPER, ["pgd", PAPER]) is None
    assert P.paper_attacks(["fgsm", "pgd", "clean", "worst", "not-registered:x=1"]) == []


def test_the_gain_not_kept_is_tested_directly_on_paired_replicates():
    from robust_glo.reporting.protocol import add_gaps, gap_cell
    from robust_glo.robustness.bootstrap import HierarchicalBootstrap
    from robust_glo.robustness.outcomes import pack_bits

    n, rng = 400, np.random.default_rng(0)
    # "masked" looks robust under FGSM on its own loss (a) but not under the worst case (c); "plain" alike
    # under both; the baseline ce is the same network type everywhere
    truth = {"ce": (0.30, 0.10), "masked": (0.70, 0.12), "plain": (0.32, 0.11)}
    rows = []
    for seed in range(5):
        u = rng.random(n)
        for loss, (pa, pc) in truth.items():
            v = np.clip(u + rng.normal(0, 0.02, n), 0, 1)
            for attack, bits in (("fgsm:loss=train", v < pa), ("worst", v < pc)):
                rows.append(
                    {"loss": loss, "seed": seed, "dataset": "d", "model": "m", "attack": attack, "eps": 0.1}
                    | {"n": n, "correct": int(bits.sum()), "images": "img", "bits": pack_bits(bits)}
                )
    boot = HierarchicalBootstrap(pd.DataFrame(rows), n_boot=400, seed=0)
    protocol = pd.DataFrame(
        [
            {"loss": loss, "paper_attack": "fgsm:loss=train", "worst_attack": "worst", "eps": 0.1}
            | {
                "paper_diff": boot.observed(loss, {"attack": "fgsm:loss=train", "eps": 0.1})
                - boot.observed("ce", {"attack": "fgsm:loss=train", "eps": 0.1}),
                "worst_diff": boot.observed(loss, {"attack": "worst", "eps": 0.1})
                - boot.observed("ce", {"attack": "worst", "eps": 0.1}),
            }
            for loss in ("masked", "plain")
        ]
    )
    out = add_gaps(protocol, boot, "ce").set_index("loss")
    masked, plain = out.loc["masked"], out.loc["plain"]
    assert masked["gap"] == pytest.approx(masked["paper_diff"] - masked["worst_diff"])
    assert masked["gap"] > 0.3 and masked["gap_ci_low"] > 0.2 and masked["gap_p_adjusted"] < 0.05
    assert plain["gap_ci_low"] < 0 < plain["gap_ci_high"] and plain["gap_p_adjusted"] >= plain["gap_p"]
    assert gap_cell(masked).endswith("*") and not gap_cell(plain).endswith("*")
    assert add_gaps(protocol, None, "ce")["gap"].isna().all()  # no outcomes: no test
