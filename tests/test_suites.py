"""Suite files: the shipped suites validate, and every kind of mistake gets a clear one-line error."""

from __future__ import annotations

import textwrap

import pytest

from robust_glo.benchmark import EVOLVED, list_suites, load_suite, parse_suite
from robust_glo.cli import main
from robust_glo.errors import ConfigError
from robust_glo.robustness.attacks import autoattack_coverage, parse_attack

SHIPPED = [
    "quick",
    "fashion-mnist-standard",
    "fashion-mnist-full",
    "cifar10-allcnnc",
    "cifar10-resnet20",
    "mnist",
]

GOOD = """
[suite]
name = "t"
dataset = "digits"
[evolve]
generations = 1
popsize = 4
steps = 10
[train]
losses = ["ce", "evolved"]
seeds = 2
steps = 20
[attack]
attacks = ["fgsm", "pgd:steps=2"]
eps = [0, 0.1]
"""


def _write(tmp_path, text: str, name: str = "s.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_suites_validate_with_their_variants():
    assert set(SHIPPED) <= set(list_suites())
    for name in SHIPPED:
        suite = load_suite(name)
        assert suite.losses and suite.seeds and suite.attacks and suite.eps
        for variant in suite.variants:
            reduced = load_suite(name, variant)
            assert reduced.name.endswith(f"-{variant}")


def test_quick_suite_is_the_issue_main_job():
    s = load_suite("quick")
    assert (s.dataset, s.model) == ("fashion-mnist", "lenet5") and s.has_evolution
    assert {"ce", "label_smoothing:0.1", EVOLVED, "poly1", "baikal"} <= set(s.losses)
    assert len(s.seeds) >= 3 and {"fgsm", "pgd"} <= {a.split(":")[0] for a in s.attacks}
    assert len(s.eps) >= 4 and 0.0 in s.eps and s.analyze and s.baseline == "ce"


def test_cifar_suites_use_the_paper_presets_and_a_reduced_variant():
    for name, preset in (("cifar10-allcnnc", "allcnn-c"), ("cifar10-resnet20", "resnet20")):
        full, reduced = load_suite(name), load_suite(name, "reduced")
        assert full.train["preset"] == preset and full.train_config("ce", 0).resolved().model == preset
        assert full.train.get("train_fraction", 1.0) == 1.0 and reduced.train["train_fraction"] < 1.0
        assert reduced.train["preset"] == preset  # a variant merges into the tables, it does not replace them
        assert 8 / 255 in full.eps


def test_full_suite_runs_the_autoattack_ensemble_at_every_eps_once():
    s = load_suite("fashion-mnist-full")
    assert all(autoattack_coverage(s.attacks, e, "linf", s.classes).verified for e in s.eps if e > 0)
    families = [parse_attack(a).family for a in s.attacks]
    assert len(families) == len(set(families)) and "aa-reference" not in families  # no attack twice
    assert len(s.seeds) > len(load_suite("quick").seeds)


def test_parse_good_suite_and_fractions(tmp_path):
    s = load_suite(_write(tmp_path, GOOD.replace("eps = [0, 0.1]", 'eps = ["8/255", 0, 0.1]')))
    assert s.eps == [0.0, 8 / 255, 0.1] and s.seeds == [0, 1] and s.classes == 10
    assert s.train_config("ce", 1).seed == 1 and s.train_config("ce", 1).steps == 20


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("[attack]", "[atack]"), "unknown key 'atack'"),
        (("steps = 20", "stepz = 20"), "[train]: unknown key 'stepz'; valid: losses, seeds"),
        (('"ce", "evolved"', '"ce", "evolved", "nosuchloss"'), "unknown loss spec 'nosuchloss'"),
        (('"ce", "evolved"', '"ce", "label_smoothing:2"'), "label_smoothing:2"),
        (('"fgsm", "pgd:steps=2"', '"fgsm", "cw"'), "unknown attack 'cw'; valid: fgsm, pgd"),
        (('"fgsm", "pgd:steps=2"', '"fgsm", "pgd:stepz=2"'), "pgd"),
        (("eps = [0, 0.1]", "eps = [0, 1.5]"), "eps 1.5 is outside [0, 1]"),
        (("eps = [0, 0.1]", 'eps = [0, "eight"]'), "eps [0, 'eight'] holds 'eight', which is not a number"),
        (("eps = [0, 0.1]", "eps = [0, 0.1, 0.1]"), "eps lists a value twice"),
        (("seeds = 2", "seeds = 0"), "seeds must be a count >= 1"),
        (("seeds = 2", "seeds = [1, 1]"), "seeds lists a seed twice"),
        (('dataset = "digits"', 'dataset = "imagenet"'), "unknown dataset 'imagenet'; valid: fashion-mnist"),
        (("popsize = 4", "popsize = 1"), "[evolve]: popsize must be >= 2"),
        (("popsize = 4", "pop_size = 4"), "'pop_size'"),
        (("steps = 20", "steps = 20\nlr = -1.0"), "lr must be a positive number, got -1.0"),
        (("steps = 20", 'steps = "many"'), "steps must be an integer, got 'many'"),
        (("steps = 20", 'steps = 20\ndataset = "mnist"'), "unknown key 'dataset'"),
        (("steps = 10", 'steps = 10\ndataset = "mnist"'), "'dataset' is set by the suite"),
    ],
)
def test_bad_suites_get_one_line_errors(tmp_path, edit, expected):
    text = GOOD.replace(*edit, 1)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        load_suite(_write(tmp_path, text))
    message = str(info.value)
    assert expected in message and "\n" not in message and "s.toml" in message


def test_evolved_needs_an_evolve_table(tmp_path):
    text = GOOD.split("[evolve]")[0] + "[train]" + GOOD.split("[train]")[1]
    with pytest.raises(ConfigError, match="'evolved' needs an \\[evolve\\] table"):
        load_suite(_write(tmp_path, text))


def test_baseline_must_be_trained(tmp_path):
    with pytest.raises(ConfigError, match="baseline 'baikal' is not one of"):
        load_suite(_write(tmp_path, GOOD + '[report]\nbaseline = "baikal"\n'))


def test_variants_merge_and_unknown_variants_fail(tmp_path):
    path = _write(
        tmp_path, GOOD + '[variants.small]\ndescription = "fewer"\ntrain = { steps = 5 }\nattack = { n = 7 }\n'
    )
    s = load_suite(path, "small")
    assert s.train["steps"] == 5 and s.losses == ["ce", "evolved"] and s.n_eval == 7 and s.description == "fewer"
    assert load_suite(path).train["steps"] == 20
    with pytest.raises(ConfigError, match="unknown variant 'big'; valid: small"):
        load_suite(path, "big")
    with pytest.raises(ConfigError, match="variants.small.*unknown key 'trian'"):
        load_suite(_write(tmp_path, GOOD + "[variants.small]\ntrian = { steps = 5 }\n", "v.toml"), "small")


def test_missing_tables_syntax_and_names(tmp_path):
    with pytest.raises(ConfigError, match="missing table \\[attack\\]"):
        parse_suite({"suite": {}, "train": {"losses": ["ce"]}})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suite(_write(tmp_path, "[suite\nname = 1"))
    with pytest.raises(ConfigError, match="unknown suite 'nope'; valid: .*quick"):
        load_suite("nope")


def test_cli_check_and_errors(tmp_path, capsys):
    assert main(["benchmark", "quick", "--check"]) == 0
    out = capsys.readouterr().out
    assert "5 losses x 3 seeds = 15 runs of 500 steps" in out
    assert "FGSM, FGSM (own training loss), PGD-10, APGD-CE (cascade, ε ≥ 0.1), APGD-T (cascade, ε ≥ 0.1)" in out
    bad = _write(tmp_path, GOOD.replace('"fgsm", "pgd:steps=2"', '"fgsm", "cw"'))
    assert main(["benchmark", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown attack 'cw'" in err
    assert not (tmp_path / "o").exists()  # validation fails before anything is written
    assert main(["benchmark", "quick"]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_attack_tables_and_specs_give_the_same_labels(tmp_path):
    text = GOOD.replace('"fgsm", "pgd:steps=2"', '"fgsm", { name = "pgd", steps = 2 }, "square:n_queries=50"')
    s = load_suite(_write(tmp_path, text))
    assert s.attacks == ["fgsm", "pgd:steps=2", "square:n_queries=50"]
    with pytest.raises(ConfigError, match="needs a 'name'"):
        load_suite(_write(tmp_path, GOOD.replace('"fgsm", "pgd:steps=2"', "{ steps = 2 }"), "n.toml"))


def test_the_quick_suite_is_autoattack_verified_at_its_largest_eps_only():
    suite = load_suite("quick")
    verified = [e for e in suite.eps if e > 0 and autoattack_coverage(suite.attacks, e, "linf", suite.classes).verified]
    assert verified == [max(suite.eps)]


def test_l2_attacks_need_radii_in_a_suite(tmp_path):
    text = GOOD.replace('attacks = ["fgsm", "pgd:steps=2"]', 'attacks = ["fgsm", "pgd:norm=l2:steps=2"]')
    assert text != GOOD
    path = tmp_path / "l2.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"L2 attack: give its radii with eps_l2"):
        load_suite(path)
    path.write_text(text.replace("[attack]", "[attack]\neps_l2 = [0.5, 1.0]"))
    assert load_suite(path).eps_l2 == [0.5, 1.0]


def test_attacked_images_beyond_the_test_split_are_refused_at_check(tmp_path, capsys):
    text = GOOD.replace("eps = [0, 0.1]", "eps = [0, 0.1]\nn = 5000")
    with pytest.raises(ConfigError) as info:
        load_suite(_write(tmp_path, text))
    message = str(info.value)
    assert "[attack]: n 5000 is more than the 360 images in the test split of digits; give at most 360" in message
    assert "\n" not in message
    assert main(["benchmark", str(tmp_path / "s.toml"), "--check"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "360" in err
    bigger_val = GOOD.replace("steps = 20", "steps = 20\nval_size = 2000")
    with pytest.raises(ConfigError, match=r"\[train\]: val_size 2000 leaves no training images"):
        load_suite(_write(tmp_path, bigger_val, "v.toml"))


def test_the_standard_study_holds_what_its_question_needs():
    """Does metalearning beat label smoothing? Label smoothing at seven strengths (ce is alpha 0) for the
    frontier, several searches per evolution, a robust search ranked by its robust fitness at every rung at
    equal clean accuracy, the AutoAttack ensemble at the largest budget of each threat model (the smaller
    ones are not affordable: evaluations/perf/aa_coverage_cost.py), and the paper's protocol beside it."""
    from robust_glo.robustness.frontier import FrontierArms

    suite = load_suite("fashion-mnist-standard")
    arms = FrontierArms.split(suite.losses)
    assert sorted(arms.smoothing.values()) == [0.0, 0.1, 0.2, 0.4, 0.6, 0.7597, 0.85]
    assert {"baikal", "poly1", "focal:2", "evolved:accuracy", "evolved:robust"} <= set(arms.others)
    assert len(suite.seeds) >= 5 and suite.n_eval >= 500 and suite.eps == [0.0, 0.02, 0.05, 0.1]
    for name in ("accuracy", "robust"):
        assert suite.evolutions[name]["searches"] >= 3
    robust = suite.evolutions["robust"]
    assert robust["fitness"].startswith("mix:") and robust.get("rung_fitness", "stated") == "stated"
    assert robust["clean_margin"] == 0.01
    for threat, budgets in (("linf", suite.eps), ("l2", suite.eps_l2)):
        verified = [
            e for e in budgets if e > 0 and autoattack_coverage(suite.attacks, e, threat, suite.classes).verified
        ]
        assert verified == [max(budgets)]
    assert "fgsm:loss=train" in suite.attacks
    # AutoAttack's order: the cheap attacks first, every later one a cascade, no attack twice
    specs = [parse_attack(a) for a in suite.attacks]
    assert [s.family for s in specs[:3]] == ["fgsm", "fgsm", "pgd"]  # FGSM, the paper's FGSM, PGD
    assert specs[1].resolved()["loss"] == "train"
    assert all(s.cascade for s in specs if s.family not in ("fgsm", "pgd"))
    assert "aa-reference" not in {s.family for s in specs}
