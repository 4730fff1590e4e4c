"""More bad input refused in one line (#22, the tester's second round): seeds out of the generators'
range, booleans from a script, models and options of the Python API, sizes against the data, empty list
items and -0.0 budgets, adversarial inputs rounded in their own dtype, dataset loaders' returns."""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

import robust_glo
from robust_glo.cli import main
from robust_glo.data import DATASETS
from robust_glo.errors import ConfigError, RobustGloError
from robust_glo.models import check_model_fits, create_model, list_models
from robust_glo.utils.parsing import MAX_SEED, parse_bool, parse_seed


def _one_line(exc) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def _suite(tmp_path, **sections: str) -> str:
    base = {
        "suite": 'name = "s"\ndataset = "digits"\ndevice = "cpu"',
        "train": 'losses = ["ce"]\nseeds = 1\nsteps = 5',
        "attack": 'attacks = ["fgsm"]\neps = [0, 0.1]\nn = 30',
    }
    base.update(sections)
    text = "\n".join(f"[{name}]\n{body}" for name, body in base.items())
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# ---- seeds ---------------------------------------------------------------------------------------------
def test_parse_seed_names_the_range():
    assert parse_seed(MAX_SEED) == MAX_SEED and parse_seed("7") == 7
    for bad in (MAX_SEED + 1, 2**70, -1, "99999999999999999999999"):
        with pytest.raises(ConfigError) as exc:
            parse_seed(bad)
        assert "0 .. 2**63-1" in _one_line(exc)


def test_huge_seeds_are_refused_everywhere(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    big = "99999999999999999999999"
    assert main(["train", "--dataset", "digits", "--steps", "2", "--seed", big, "--out", "T"]) == 2
    assert "2**63-1" in capsys.readouterr().err
    assert main(["evolve", "--dataset", "digits", "--seed", big, "--out", "E"]) == 2
    assert "2**63-1" in capsys.readouterr().err
    assert not (tmp_path / "T").exists() and not (tmp_path / "E").exists()
    with pytest.raises(ConfigError, match=r"2\*\*63-1"):
        robust_glo.train(dataset="digits", steps=2, seed=2**70)
    with pytest.raises(ConfigError, match=r"2\*\*63-1"):
        robust_glo.train(dataset="digits", steps=2, split_seed=2**64)
    with pytest.raises(ConfigError, match=r"2\*\*63-1"):
        robust_glo.evolve(dataset="digits", seed=2**70, out=str(tmp_path / "E"))
    for section, body in (
        ("evolve", "generations = 1\npopsize = 4\nsteps = 5\nseed = 99999999999999999999"),
        ("train", 'losses = ["ce"]\nseeds = [99999999999999999999]\nsteps = 5'),
    ):
        path = _suite(tmp_path, **{section: body})
        if section == "evolve":
            path = _suite(tmp_path, evolve=body, train='losses = ["ce", "evolved"]\nseeds = 1\nsteps = 5')
        assert main(["benchmark", path, "--check", "--out", "B"]) == 2
        err = capsys.readouterr().err
        assert "2**63-1" in err and err.count("\n") == 1, err


def test_the_largest_seed_runs():
    from robust_glo.data import load_dataset

    result = robust_glo.train(dataset="digits", steps=2, seed=MAX_SEED, split_seed=MAX_SEED)
    data = load_dataset("digits")
    table = robust_glo.evaluate_model(
        result.model, data.test.images[:8], data.test.labels[:8], ["pgd:steps=2"], 0.1, seed=MAX_SEED
    )
    assert len(table)


# ---- booleans ------------------------------------------------------------------------------------------
def test_parse_bool_takes_bools_and_their_words_only():
    import numpy as np

    for value in (True, "true", "YES", "1", 1, np.bool_(True), " Yes "):
        assert parse_bool(value, "x") is True
    for value in (False, "false", "No", "0", 0, np.bool_(False)):
        assert parse_bool(value, "x") is False
    for value in ("maybe", "", None, 2, [True], "nein"):
        with pytest.raises(ConfigError) as exc:
            parse_bool(value, "resume")
        assert "resume must be true or false" in _one_line(exc) and "yes/no" in str(exc.value)


def test_bool_options_of_the_api_are_parsed_not_truthy(tmp_path, monkeypatch, capsys):
    kw = dict(dataset="digits", generations=1, popsize=2, steps=2, topk=1, reeval_seeds=1, backend="local")
    out = tmp_path / "evo"
    robust_glo.evolve(out=out, progress="no", **kw)
    assert capsys.readouterr().err == ""
    for word in ("no", "false", "0", False):
        with pytest.raises(ConfigError) as exc:
            robust_glo.evolve(out=out, resume=word, progress=False, **kw)
        text = _one_line(exc)
        assert "resume=True" in text and "--resume" not in text, text
    robust_glo.evolve(out=out, resume="yes", progress=False, **kw)  # resumes the finished run
    with pytest.raises(ConfigError, match="resume must be true or false"):
        robust_glo.evolve(out=out, resume="maybe", progress=False, **kw)
    robust_glo.train(dataset="digits", steps=2, progress="no")
    assert capsys.readouterr().err == ""
    with pytest.raises(ConfigError, match="progress must be true or false"):
        robust_glo.train(dataset="digits", steps=2, progress="sometimes")
    with pytest.raises(ConfigError, match="nesterov must be true or false"):
        robust_glo.train(dataset="digits", steps=2, nesterov="perhaps")
    result = robust_glo.train(dataset="digits", steps=2, nesterov="no", out=tmp_path / "t")
    assert result.config.recipe.nesterov is False
    with pytest.raises(ConfigError, match="progress must be true or false"):
        robust_glo.run_benchmark("quick", tmp_path / "b", progress="loud")
    assert not (tmp_path / "b").exists()


# ---- losses that cannot train --------------------------------------------------------------------------
LOSSES = """
import torch
import torch.nn.functional as F
def detached(logits, targets):
    return F.cross_entropy(logits, targets).detach()
def constant(logits, targets):
    return torch.tensor(1.0)
"""


@pytest.mark.parametrize("name", ["detached", "constant"])
def test_a_user_loss_without_gradient_is_refused_before_the_run_dir(tmp_path, capsys, monkeypatch, name):
    from robust_glo.errors import LossSpecError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_losses.py").write_text(LOSSES)
    assert main(["train", "--dataset", "digits", "--steps", "3", "--loss", f"my_losses.py:{name}", "--out", "R"]) == 2
    err = capsys.readouterr().err
    assert "does not depend on the logits" in err and err.count("\n") == 1, err
    assert not (tmp_path / "R").exists()
    with pytest.raises(LossSpecError, match="does not depend on the logits"):
        robust_glo.train(f"my_losses.py:{name}", dataset="digits", steps=3)


def test_a_builtin_loss_that_overflows_on_fresh_weights_is_refused(tmp_path, capsys, monkeypatch):
    from robust_glo.errors import NonFiniteLossError

    monkeypatch.chdir(tmp_path)
    spec = "taylorglo:[0,0,0,0,0,3e38,0,0]"
    assert main(["train", "--dataset", "digits", "--steps", "3", "--loss", spec, "--out", "R"]) == 2
    err = capsys.readouterr().err
    assert spec in err and "not finite" in err and err.count("\n") == 1, err
    assert not (tmp_path / "R").exists()
    # one that only overflows on the model's logits is caught after step 0, with the same error
    import robust_glo.training.run as run

    monkeypatch.setattr(run, "check_loss_on_probe", lambda *a, **k: None)
    with pytest.raises(NonFiniteLossError) as exc:
        robust_glo.train(spec, dataset="digits", steps=3)
    assert spec in _one_line(exc) and "fresh weights" in str(exc.value)


# ---- environment.json of a training run ----------------------------------------------------------------
def test_a_reused_runs_damaged_environment_is_rebuilt(tmp_path):
    import json

    out = tmp_path / "run"
    robust_glo.train(dataset="digits", steps=2, out=out)
    env = out / "environment.json"
    env.write_text(env.read_text()[:20])
    again = robust_glo.train(dataset="digits", steps=2, out=out)
    assert again.reused
    data = json.loads(env.read_text())
    assert data["seeds"]["seed"] == 0 and "rebuilt" in data


# ---- lists with an empty item, -0.0 --------------------------------------------------------------------
def test_an_empty_list_item_is_refused_quoting_the_whole_value(tmp_path, capsys, monkeypatch):
    from robust_glo.robustness.attacks import resolve_attacks
    from robust_glo.utils.parsing import parse_budgets

    monkeypatch.chdir(tmp_path)
    for flag, value in (("--eps", "8/255,"), ("--attacks", "fgsm,,pgd")):
        assert main(["evaluate", "--loss", "ce", "--dataset", "digits", flag, value, "--out", "X"]) == 2
        err = capsys.readouterr().err
        assert f"{flag} {value!r} has an empty item" in err and err.count("\n") == 1, err
    assert not (tmp_path / "X").exists()
    with pytest.raises(ConfigError, match="empty item"):
        resolve_attacks("fgsm,")
    with pytest.raises(ConfigError, match="empty item"):
        parse_budgets(",0.1")


def test_minus_zero_is_the_budget_zero():
    from robust_glo.robustness import evaluate_model
    from robust_glo.utils.parsing import parse_budgets

    for value in (-0.0, "-0", [-0.0, 0.1]):
        budgets = parse_budgets(value)
        assert budgets[0] == 0.0 and str(budgets[0]) == "0.0"
    with pytest.raises(ConfigError, match="twice"):
        parse_budgets([0.0, -0.0])
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    x, y = torch.rand(8, 1, 4, 4, generator=g), torch.randint(0, 10, (8,), generator=g)
    table = evaluate_model(model, x, y, ["fgsm"], eps=-0.0)
    assert all(str(float(e)) == "0.0" for e in table["eps"])


# ---- the Python API's model and options ----------------------------------------------------------------
def _toy():
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 10))
    return model, torch.rand(8, 1, 4, 4, generator=g), torch.randint(0, 10, (8,), generator=g)


def test_evaluate_model_takes_modules_and_wraps_plain_callables():
    model, x, y = _toy()
    table = robust_glo.evaluate_model(model, x, y, ["fgsm"], eps=[0, 0.1])
    wrapped = robust_glo.evaluate_model(lambda images: model(images), x, y, ["fgsm"], eps=[0, 0.1])
    assert list(table["accuracy"]) == list(wrapped["accuracy"])
    adv = robust_glo.robustness.generate_adversarial(lambda images: model(images), x, y, "pgd:steps=2", 0.1)
    assert adv.shape == x.shape
    for bad in (42, "model.pt", {"weight": 1}):
        with pytest.raises(ConfigError) as exc:
            robust_glo.evaluate_model(bad, x, y, ["fgsm"], eps=0.1)
        assert "is not a model" in _one_line(exc) and "nn.Module" in str(exc.value)


def test_unknown_options_and_bad_out_folders_are_config_errors():
    model, x, y = _toy()
    with pytest.raises(ConfigError) as exc:
        robust_glo.evaluate_model(model, x, y, ["fgsm"], eps=0.1, bogus=1)
    assert "bogus" in _one_line(exc) and "batch_size" in str(exc.value)
    with pytest.raises(ConfigError, match="out must be a folder path"):
        robust_glo.train(dataset="digits", steps=2, out=123)
    with pytest.raises(ConfigError, match="out must be a folder path"):
        robust_glo.evolve(dataset="digits", out=123)
    with pytest.raises(ConfigError, match="out must be a folder path"):
        robust_glo.run_benchmark("quick", 123)


# ---- adversarial inputs in their own dtype -------------------------------------------------------------
@pytest.mark.parametrize(
    "model_dtype, input_dtype, attack, eps",
    [
        (torch.float32, torch.bfloat16, "pgd:steps=5", 0.1),
        (torch.bfloat16, torch.bfloat16, "fgsm", 8 / 255),
        (torch.float16, torch.float32, "pgd:steps=5", 0.1),
        (torch.float16, torch.float16, "pgd:steps=5", 0.1),
        (torch.float32, torch.bfloat16, "pgd:norm=l2:steps=5", 0.5),
    ],
)
def test_adversarial_inputs_stay_within_the_budget_in_their_own_dtype(model_dtype, input_dtype, attack, eps):
    from robust_glo.robustness import generate_adversarial

    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    model = model.to(model_dtype)
    x = torch.rand(32, 1, 8, 8, generator=g).to(input_dtype)
    y = torch.randint(0, 10, (32,), generator=g)
    adv = generate_adversarial(model, x, y, attack, eps)
    assert adv.dtype == input_dtype
    delta = adv.double() - x.double()
    if "l2" in attack:
        assert float(delta.flatten(1).norm(dim=1).max()) <= eps
    else:
        assert float(delta.abs().max()) <= eps
    assert float(adv.double().min()) >= 0 and float(adv.double().max()) <= 1
    assert float(delta.abs().max()) > 0.5 * (eps if "l2" not in attack else 0.01)  # the attack still moved


# ---- dataset loaders -----------------------------------------------------------------------------------
def _register(name, loader, **facts):
    from robust_glo.data import register_dataset

    values = dict(
        num_classes=10,
        image_shape=(1, 8, 8),
        mean=(0.5,),
        std=(0.3,),
        default_val_size=20,
        default_model="digits-cnn",
        n_train=200,
        n_test=50,
        source="synthetic",
    )
    values.update(facts)
    register_dataset(name, **values)(loader)


def _arrays(n, dtype=torch.float32, scale=1.0, labels=torch.int64, high=10):
    g = torch.Generator().manual_seed(n)
    return (torch.rand(n, 1, 8, 8, generator=g) * scale).to(dtype), torch.randint(0, high, (n,), generator=g).to(labels)


@pytest.mark.parametrize(
    "kind, make, words",
    [
        ("u8", lambda: (*_arrays(200, torch.uint8, 255), *_arrays(50, torch.uint8, 255)), "are uint8; return float"),
        ("255", lambda: (*_arrays(200, scale=255), *_arrays(50, scale=255)), "divide 0-255 values by 255"),
        ("flt", lambda: (*_arrays(200, labels=torch.float32), *_arrays(50)), "train labels are float32"),
        ("big", lambda: (*_arrays(200, high=12), *_arrays(50)), "train labels range over [0, 11]"),
        ("list", lambda: (list(_arrays(200)[0]), _arrays(200)[1], *_arrays(50)), "are a list; return torch tensors"),
    ],
)
def test_what_a_loader_returns_is_checked(kind, make, words):
    from robust_glo.data import load_dataset
    from robust_glo.data.registry import unregister_dataset
    from robust_glo.errors import DatasetError

    name = f"toy-{kind}"
    _register(name, lambda root, download: make())
    try:
        with pytest.raises(DatasetError) as exc:
            load_dataset(name)
        assert name in _one_line(exc) and words in str(exc.value), str(exc.value)
    finally:
        unregister_dataset(name)


def test_numpy_and_int32_loaders_are_converted_and_missing_files_named(tmp_path):
    from robust_glo.data import load_dataset
    from robust_glo.data.registry import unregister_dataset
    from robust_glo.errors import DatasetError

    _register(
        "toy-np", lambda root, download: tuple(t.numpy() for t in (*_arrays(200, labels=torch.int32), *_arrays(50)))
    )

    def missing(root, download):
        raise FileNotFoundError("no toy.npz")

    _register("toy-missing", missing)
    try:
        data = load_dataset("toy-np")
        assert data.train.images.dtype == torch.float32 and data.test.labels.dtype == torch.int64
        with pytest.raises(DatasetError) as exc:
            load_dataset("toy-missing", root=tmp_path)
        assert "toy-missing" in _one_line(exc) and str(tmp_path) in str(exc.value) and "no toy.npz" in str(exc.value)
    finally:
        unregister_dataset("toy-np")
        unregister_dataset("toy-missing")


def test_register_dataset_refuses_too_few_classes_and_a_zero_std():
    from robust_glo.errors import DatasetError

    for facts, words in (({"num_classes": 1}, "num_classes must be an integer >= 2"), ({"std": (0.0,)}, "std must")):
        with pytest.raises(DatasetError) as exc:
            _register("toy-bad", lambda root, download: None, **facts)
        assert "toy-bad" in _one_line(exc) and words in str(exc.value)


# ---- sizes against the data ----------------------------------------------------------------------------
def test_attack_samples_against_the_validation_split(tmp_path, capsys, monkeypatch):
    import json

    from robust_glo.evolution import EvolveConfig

    monkeypatch.chdir(tmp_path)
    args = ["evolve", "--dataset", "digits", "--fitness", "fgsm:0.1", "--out", "E"]
    assert main([*args, "--attack-samples", "5000"]) == 2
    err = capsys.readouterr().err
    assert "attack-samples 5000 is more than the 180 images in the validation split of digits" in err, err
    assert err.count("\n") == 1 and not (tmp_path / "E").exists()
    # the default is the whole split when smaller, recorded as the number; fashion-mnist keeps 1000
    assert EvolveConfig.create(dataset="digits", fitness="fgsm:0.1").attack_samples == 180
    assert EvolveConfig.create(dataset="fashion-mnist").attack_samples == 1000
    assert EvolveConfig.create(dataset="digits", fitness="fgsm:0.1", val_size=50).attack_samples == 50
    small = ["--generations", "1", "--popsize", "2", "--steps", "2", "--topk", "1", "--reeval-seeds", "1"]
    assert main([*args, *small, "--backend", "local", "--attack-samples", "20"]) == 0
    assert json.loads((tmp_path / "E" / "config.json").read_text())["attack_samples"] == 20


def test_diagnostics_n_against_the_images_attacked(tmp_path, capsys):
    from robust_glo.comparison import CompareConfig

    path = _suite(tmp_path, **{"attack.diagnostics": "n = 5000"})
    assert main(["benchmark", path, "--check", "--out", str(tmp_path / "B")]) == 2
    err = capsys.readouterr().err
    assert "diagnostics n 5000 is more than the 30 test images attacked" in err and err.count("\n") == 1, err
    # the default (200) is clamped to a tiny [attack] n and recorded so; an explicit n within it is kept
    assert CompareConfig(dataset="digits", test_size=30).validated().diagnostics["n"] == 30
    assert CompareConfig(dataset="digits", test_size=30, diagnostics={"n": 10}).validated().diagnostics["n"] == 10
    assert CompareConfig(dataset="digits").validated().diagnostics["n"] == 200


# ---- evolution CSV views -------------------------------------------------------------------------------
def test_damaged_evolution_csvs_are_rebuilt_on_resume_and_named_by_the_report(tmp_path):
    import pandas as pd

    from robust_glo.errors import StateFileError
    from robust_glo.reporting.inputs import load_inputs

    root = tmp_path / "bench"
    out = root / "evolve"
    kw = dict(dataset="digits", generations=2, popsize=3, steps=2, topk=1, reeval_seeds=1, backend="local")
    robust_glo.evolve(out=out, progress=False, **kw)
    good = {name: (out / name).read_text() for name in ("history.csv", "generations.csv")}
    pd.DataFrame({"loss": ["ce"], "seed": [0], "attack": ["clean"], "eps": [0.0], "accuracy": [0.9]}).to_csv(
        root / "results.csv", index=False
    )
    assert len(load_inputs(root).evolutions[0].history) == 6
    for name, keep in (("history.csv", 0.6), ("generations.csv", 0.7)):
        (out / name).write_text(good[name][: int(len(good[name]) * keep)])
        with pytest.raises(StateFileError) as exc:
            load_inputs(root)
        text = _one_line(exc)
        assert name in text and "re-run the evolve stage" in text, text
        result = robust_glo.evolve(out=out, resume=True, progress=False, **kw)
        assert result.evaluated_now == 0
        assert (out / name).read_text() == good[name]
    assert len(load_inputs(root).evolutions[0].history) == 6


def test_a_model_that_cannot_take_the_images_is_refused_before_anything_is_written(tmp_path, capsys):
    """--check refuses what the run would refuse, and evaluate writes nothing (LeNet-5 needs 28x28 or 32x32)."""
    bad = tmp_path / "bad.toml"
    body = '[suite]\ndataset = "digits"\nmodel = "lenet5"\n[train]\nlosses = ["ce"]\nseeds = 1\nsteps = 5\n'
    bad.write_text(body + '[attack]\nattacks = ["fgsm"]\neps = [0, 0.1]\nn = 20\n')
    assert main(["benchmark", str(bad), "--check"]) == 2
    assert main(["benchmark", str(bad), "--out", str(tmp_path / "b"), "--backend", "local"]) == 2
    out = tmp_path / "e"
    assert main(["evaluate", "--model", "lenet5", "--dataset", "digits", "--loss", "ce", "--out", str(out)]) == 2
    assert main(["evaluate", "--model", "lenet6", "--dataset", "digits", "--loss", "ce", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("robust-glo: error: ") for line in err)
    assert "needs 28x28 or 32x32 images; dataset 'digits' has 8x8" in err[0] and "[suite]" in err[0]
    assert "unknown model 'lenet6'" in err[3]
    assert not (tmp_path / "b").exists() and not out.exists()
    check_model_fits("lenet5", DATASETS["fashion-mnist"])  # a pair that fits passes


def test_check_model_fits_agrees_with_building_the_model_for_every_pair():
    """The meta-device check refuses exactly the (model, dataset) pairs that building the model refuses."""
    outcomes = {}
    for dataset, info in DATASETS.items():
        for model in list_models():
            verdicts = []
            for build in (check_model_fits, create_model):
                try:
                    build(model, info)
                    verdicts.append(True)
                except RobustGloError:
                    verdicts.append(False)
            assert verdicts[0] == verdicts[1], (dataset, model)
            outcomes[dataset, model] = verdicts[0]
    assert outcomes["fashion-mnist", "lenet5"] and not outcomes["digits", "lenet5"]
