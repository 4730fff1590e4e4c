"""Training precision: "fp32" / "bf16" / "auto" resolved per machine, part of a run's identity, recorded."""

import json

import pytest
import torch

from robust_glo.errors import ConfigError
from robust_glo.training import TrainConfig, train_run, train_runs_together
from robust_glo.training import precision as precision_mod
from robust_glo.training.precision import fit_precision_options, resolve_precision
from robust_glo.training.recipe import without_execution_options
from robust_glo.utils import device as device_mod


def _cfg(**kw):
    base = dict(loss="ce", dataset="digits", steps=20, batch_size=32, lr=0.1, device="cpu")
    return TrainConfig.from_dict({**base, **kw})


@pytest.fixture
def cpu_has_bf16(monkeypatch):
    """Set whether this CPU counts as having native bfloat16: `cpu_has_bf16(True)`."""

    def set_native(native: bool) -> None:
        monkeypatch.setattr(precision_mod, "native_cpu_bf16", lambda: native)

    return set_native


@pytest.mark.parametrize("native", [True, False])
def test_auto_resolves_by_the_cpu(cpu_has_bf16, native):
    cpu_has_bf16(native)
    assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for explicitly: honoured, however slow
    assert resolve_precision("fp32", "cpu", amp=True) == "fp32"  # amp is CUDA's switch; it never acted on a CPU
    assert _cfg(precision="auto").resolved().precision == ("bf16" if native else "fp32")
    assert _cfg().resolved().precision == "fp32"  # the default stays float32 everywhere


def test_auto_on_cuda_keeps_what_amp_says(cpu_has_bf16, monkeypatch):
    cpu_has_bf16(True)
    monkeypatch.setattr(precision_mod, "resolve_device", lambda device: torch.device("cuda"))
    assert resolve_precision("auto", "auto") == "fp32"
    assert resolve_precision("auto", "auto", amp=True) == "bf16"
    assert resolve_precision("fp32", "auto", amp=True) == "bf16"  # the older switch still works on CUDA
    assert resolve_precision("bf16", "auto") == "bf16"


def test_bad_precision_is_refused():
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto"):
        _cfg(precision="fp16").resolved()
    with pytest.raises(ConfigError, match="not resolved"):
        fit_precision_options("auto")


def test_detection_reads_torch_or_cpuinfo(monkeypatch):
    support = device_mod.cpu_bf16_support.__wrapped__
    info = support()
    assert set(info) >= {"cpu_capability", "avx512_bf16", "amx_bf16", "native_bf16", "source"}
    assert info["native_bf16"] == (info["avx512_bf16"] or info["amx_bf16"])
    # Without torch's checks, the flags of /proc/cpuinfo decide.
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    monkeypatch.setattr(device_mod, "_cpuinfo_flags", lambda: {"avx512f", "avx512_bf16"})
    assert support() | {"cpu_capability": None} == {
        "cpu_capability": None,
        "avx512_bf16": True,
        "amx_bf16": False,
        "native_bf16": True,
        "source": "cpuinfo",
    }
    monkeypatch.setattr(device_mod, "_cpuinfo_flags", lambda: {"avx2", "avx512f"})
    assert support()["native_bf16"] is False
    monkeypatch.setattr(device_mod, "_cpuinfo_flags", lambda: None)  # no /proc/cpuinfo, no torch checks: no
    assert support()["native_bf16"] is False and support()["source"] == "none"


def test_precision_is_part_of_a_runs_identity(digits, tmp_path, cpu_has_bf16):
    out = tmp_path / "run"
    cpu_has_bf16(False)
    first = train_run(_cfg(precision="auto"), out, splits=digits, progress=False)
    stored = json.loads((out / "config.json").read_text())
    assert stored["precision"] == "fp32"  # recorded resolved, never "auto"
    assert train_run(_cfg(precision="fp32"), out, splits=digits, progress=False).reused
    assert train_run(_cfg(precision="auto"), out, splits=digits, progress=False).reused
    # On a CPU with bfloat16, "auto" means bf16: the float32 run is not that run, so it is trained again.
    cpu_has_bf16(True)
    again = train_run(_cfg(precision="auto"), out, splits=digits, progress=False)
    assert not again.reused and again.config.precision == "bf16"
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"
    assert train_run(_cfg(precision="bf16"), out, splits=digits, progress=False).reused
    assert not train_run(_cfg(precision="fp32"), out, splits=digits, progress=False).reused
    env = json.loads((out / "environment.json").read_text())
    assert env["precision"] == "fp32" and "native_bf16" in env["hardware"]["cpu_bf16"]
    assert json.loads((out / "metrics.json").read_text())["precision"] == "fp32"
    assert first.val_accuracy is not None


def test_a_run_stored_before_precision_existed_counts_as_fp32(digits, tmp_path):
    out = tmp_path / "run"
    train_run(_cfg(), out, splits=digits, progress=False)
    legacy = json.loads((out / "config.json").read_text())
    del legacy["precision"]
    (out / "config.json").write_text(json.dumps(legacy))
    assert train_run(_cfg(), out, splits=digits, progress=False).reused
    assert not train_run(_cfg(precision="bf16"), out, splits=digits, progress=False).reused
    # With amp the old record does not say whether it ran bfloat16 (CUDA) or float32 (CPU): never reused.
    assert without_execution_options({"amp": True})["precision"] == "unrecorded"
    assert without_execution_options({"amp": False}) == without_execution_options({"amp": False, "precision": "fp32"})


def test_bf16_training_gives_finite_float32_weights_in_the_usual_layout(digits, tmp_path):
    result = train_run(_cfg(precision="bf16", steps=30), tmp_path / "run", splits=digits, progress=False)
    assert result.status == "ok" and result.val_accuracy > 0.5
    for name, p in result.model.state_dict().items():
        assert p.dtype in (torch.float32, torch.int64), name
        assert torch.isfinite(p.float()).all(), name
        assert p.is_contiguous(), name  # channels_last only while training


def test_populations_train_in_bf16_on_the_cpu(digits, tmp_path):
    configs = [_cfg(precision="bf16", seed=s) for s in (0, 1)]
    results = train_runs_together(configs, [tmp_path / f"s{s}" for s in (0, 1)], splits=digits)
    assert [r.status for r in results] == ["ok", "ok"]
    for r in results:
        assert r.config.precision == "bf16"
        assert all(torch.isfinite(p).all() for p in r.model.parameters())


def test_the_cpu_bf16_script_runs(tmp_path):
    """evaluations/perf/cpu_bf16.py --smoke (digits, a few seconds): both ratios, the accuracies, the CPU."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "cpu_bf16.json"
    done = subprocess.run(
        [sys.executable, str(root / "evaluations/perf/cpu_bf16.py"), "--smoke", "--threads", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["one_thread"]["ratio_bf16_to_fp32"] > 0 and summary["all_threads"]["ratio_bf16_to_fp32"] > 0
    assert len(summary["val_accuracy"]["bf16"]) == 2 and isinstance(summary["accuracies_agree"], bool)
    assert summary["auto_resolves_to"] == ("bf16" if summary["cpu_bf16"]["native_bf16"] else "fp32")
    assert "bf16 / fp32" in done.stdout


def test_the_train_command_takes_precision(tmp_path, capsys):
    from robust_glo.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--steps", "5", "--precision", "bf16", "--out", str(out)]) == 0
    assert "(bf16)" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["precision"] == "bf16"


# ------------------------------------------------------------------------------ evolution candidates


def _tiny_evolution(out, **kw):
    from robust_glo.evolution import EvolveConfig

    base = dict(
        dataset="digits", generations=1, popsize=4, steps=4, batch_size=32, topk=1, reeval_seeds=1,
        backend="local", threads=1, progress=False,
    )  # fmt: skip
    return EvolveConfig.create(out=str(out), **{**base, **kw})


@pytest.mark.parametrize("native", [True, False])
def test_an_evolution_resolves_its_precision(cpu_has_bf16, native, tmp_path):
    cpu_has_bf16(native)
    assert _tiny_evolution(tmp_path / "a", precision="auto").precision == ("bf16" if native else "fp32")
    assert _tiny_evolution(tmp_path / "b").precision == "fp32"  # the default stays float32 everywhere
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto, got 'fp16'"):
        _tiny_evolution(tmp_path / "c", precision="fp16")


def test_every_candidate_trains_in_the_evolutions_precision(cpu_has_bf16, tmp_path, monkeypatch):
    from robust_glo.evolution import problem as problem_mod
    from robust_glo.evolution import run_evolution

    cpu_has_bf16(True)
    seen: list[bool] = []
    real_fit = problem_mod.fit

    def spy(*args, **kwargs):
        seen.append(kwargs["bf16_cpu"])
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(problem_mod, "fit", spy)
    runs = {}
    for precision in ("auto", "fp32"):
        seen.clear()
        config = _tiny_evolution(tmp_path / precision, precision=precision)
        runs[precision] = run_evolution(config)
        assert seen and set(seen) == {precision == "auto"}  # candidates and the re-evaluation alike
        stored = json.loads((tmp_path / precision / "config.json").read_text())
        assert stored["precision"] == ("bf16" if precision == "auto" else "fp32")
    trained = [
        [h["val_accuracy"] for h in runs[p].history if h["status"] not in ("rejected",)] for p in ("auto", "fp32")
    ]
    assert len(trained[0]) == len(trained[1]) > 0
    # Changing the precision changes results, so resuming the bf16 run in fp32 is refused, naming the option.
    with pytest.raises(ConfigError, match="precision"):
        run_evolution(_tiny_evolution(tmp_path / "auto", precision="fp32"), resume=True)


def test_the_evolve_command_refuses_a_bad_precision(tmp_path, capsys):
    from robust_glo.cli import main

    code = main(["evolve", "--dataset", "digits", "--precision", "fp16", "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "precision must be one of fp32, bf16, auto, got 'fp16'" in err[0]
    assert not (tmp_path / "e").exists()


# The tables that take a precision, and the rest of a suite that has them ([attack] follows).
PRECISION_TABLES = {
    "train": '[train]\nlosses = ["ce"]\nseeds = 1\nsteps = 20\nprecision = "PRECISION"\n',
    "evolve": '[evolve]\ngenerations = 1\npopsize = 4\nsteps = 4\nprecision = "PRECISION"\n'
    '[train]\nlosses = ["ce", "evolved"]\nseeds = 1\nsteps = 20\n',
}


@pytest.mark.parametrize("table", sorted(PRECISION_TABLES))
def test_a_suite_takes_precision_in_its_train_and_evolve_tables(tmp_path, cpu_has_bf16, table):
    from robust_glo.benchmark import load_suite
    from robust_glo.benchmark.plan import describe

    text = '[suite]\nname = "t"\ndataset = "digits"\n' + PRECISION_TABLES[table]
    text += '[attack]\nattacks = ["fgsm"]\neps = [0, 0.1]\n'
    path = tmp_path / "s.toml"
    for native, expected in ((True, "bf16"), (False, "fp32")):
        cpu_has_bf16(native)
        path.write_text(text.replace("PRECISION", "auto"))
        suite = load_suite(path)
        if table == "train":
            assert suite.train_config("ce", 0).precision == expected
        else:
            options = suite.evolutions[""]
            assert suite.evolve_precision(options) == expected
            # benchmark --check says what the candidates will train in on this machine
            assert f"precision auto ({expected} on this machine)" in describe(suite)
    path.write_text(text.replace("PRECISION", "fp16"))
    with pytest.raises(ConfigError, match=rf"\[{table}\].*precision must be one of"):
        load_suite(path)


def test_the_evolve_precision_script_times_both_searches(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "ep.json"
    cmd = [sys.executable, str(root / "evaluations/perf/evolve_precision.py"), "--smoke"]
    done = subprocess.run(
        [*cmd, "--runs", str(tmp_path / "runs"), "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    for precision in ("fp32", "bf16"):
        stored = json.loads((tmp_path / "runs" / precision / "config.json").read_text())
        assert stored["precision"] == precision and summary["searches"][precision]["trained"] > 0
    assert summary["speedup_fp32_over_bf16_wall"] > 0 and "fp32 / bf16 wall time" in done.stdout


def test_an_evolution_stored_before_precision_existed_resumes_as_fp32(tmp_path, cpu_has_bf16):
    from robust_glo.evolution import run_evolution

    cpu_has_bf16(True)  # where "auto" would mean bf16: the missing key must still read as fp32

    config = _tiny_evolution(tmp_path / "old")
    run_evolution(config)
    path = tmp_path / "old" / "config.json"
    stored = json.loads(path.read_text())
    del stored["precision"]  # as written before the option existed
    path.write_text(json.dumps(stored))
    assert run_evolution(_tiny_evolution(tmp_path / "old"), resume=True).evaluated_now == 0


def test_the_batched_backend_trains_populations_in_the_evolutions_precision(cpu_has_bf16, tmp_path, monkeypatch):
    from robust_glo.evolution import problem as problem_mod
    from robust_glo.evolution import run_evolution

    cpu_has_bf16(True)
    seen: list[tuple[bool, bool]] = []
    real = problem_mod.train_population

    def spy(*args, **kwargs):
        seen.append((kwargs["bf16_cpu"], kwargs["amp"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(problem_mod, "train_population", spy)
    run_evolution(_tiny_evolution(tmp_path / "b", precision="auto", backend="batched"))
    assert seen and set(seen) == {(True, True)}
    seen.clear()
    run_evolution(_tiny_evolution(tmp_path / "f", backend="batched"))
    assert seen and set(seen) == {(False, False)}


def test_a_cpu_run_with_amp_is_not_resumed_in_bf16_on_cuda(tmp_path, monkeypatch):
    from robust_glo.errors import ResumeError
    from robust_glo.evolution import run_evolution

    config = _tiny_evolution(tmp_path / "amp", amp=True)
    assert config.precision == "fp32"  # amp is CUDA's switch: on this CPU the run trains in float32
    run_evolution(config)
    # The same request on a CUDA machine resolves to bf16 (amp decides there); the stored run trained fp32.
    monkeypatch.setattr(precision_mod, "resolve_device", lambda device: torch.device("cuda"))
    with pytest.raises(ResumeError, match=r"precision 'bf16' \(run has 'fp32'\)"):
        run_evolution(_tiny_evolution(tmp_path / "amp", amp=True), resume=True)


def test_a_problem_in_another_precision_than_its_config_is_refused(tmp_path):
    from robust_glo.evolution import TaylorGLOProblem, run_evolution

    config = _tiny_evolution(tmp_path / "p")
    problem = TaylorGLOProblem.from_config(_tiny_evolution(tmp_path / "q", precision="bf16"))
    with pytest.raises(ConfigError, match="the problem trains in 'bf16' but the config's precision is 'fp32'"):
        run_evolution(config, problem=problem)
    assert not (tmp_path / "p").exists()


def test_a_bad_precision_in_an_evolve_config_file_names_the_file_and_the_valid_values(tmp_path, capsys):
    from robust_glo.cli import main
    from robust_glo.evolution import EvolveConfig

    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto, got 3"):
        EvolveConfig.create(dataset="digits", precision=3)  # a number, not only a bad string, lists the values
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, auto, got 3"):
        _cfg(precision=3).resolved()
    config = tmp_path / "evo.toml"
    config.write_text("precision = 3\n")
    code = main(["evolve", "--config", str(config), "--out", str(tmp_path / "e")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert repr(str(config)) in err[0] and "precision must be one of fp32, bf16, auto, got 3" in err[0]
    assert not (tmp_path / "e").exists()
    # a bad flag is the flag's error, not the file's
    config.write_text('fidelity = "flat"\n')
    assert main(["evolve", "--config", str(config), "--fidelity", "fast", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert "fidelity 'fast' is unknown" in err and str(config) not in err
