"""The command line as one tool (#23 item 7): every flag has help, the shared flags mean the same thing
everywhere (old spellings kept as aliases), one error prefix, a top-level help about the tool, progress
bars with a count, an ETA and real fitness values, long loss specs by their display names, no Ray notice a
user cannot act on, and a Ctrl-C message that says what a re-run really does."""

from __future__ import annotations

import argparse
import json
import logging
import re

import pytest

from robust_glo.cli import build_parser, main
from robust_glo.cli.messages import ERROR_PREFIX

LONG_SPEC = "taylorglo:[0.01234567891234,0.0,0.0,0.0,0.0,1.00000000001,0.0,0.0]"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _subcommand_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {a.dest: a.help for a in action._choices_actions}


# ---- help ------------------------------------------------------------------------------------------------
def test_every_subcommand_and_every_flag_has_help():
    parser = build_parser()
    missing = []
    for name, text in _subcommand_help(parser).items():
        if not (text or "").strip():
            missing.append(f"subcommand {name}")
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if not (action.help or "").strip():
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip():
            missing.append(f"robust-glo {'/'.join(action.option_strings)}")
    assert not missing, missing


def test_top_level_help_describes_the_tool_its_commands_and_docs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "Discover loss functions by evolution" in text and "robust" in text
    assert "robust-glo benchmark quick --out runs/quick" in text  # the main job
    for command in ("benchmark", "evolve", "train", "evaluate", "analyze", "report", "losses"):
        assert re.search(rf"^\s+{command}\s", text, re.M), command
    assert "docs/" in text and "README.md" in text
    assert "module" not in text.lower()  # not the module layout
    assert "--no-progress" in text and "--seeds N|LIST" in text and ERROR_PREFIX.strip() in text


# ---- the shared flags --------------------------------------------------------------------------------------
LONG_WORK = {
    "train": [],
    "evolve": [],
    "evaluate": ["--out", "X"],
    "benchmark": ["quick"],
}


@pytest.mark.parametrize("command", sorted(LONG_WORK))
def test_no_progress_and_quiet_are_the_same_flag_everywhere(command):
    parser = build_parser()
    base = [command, *LONG_WORK[command]]
    assert parser.parse_args(base).progress is True
    assert parser.parse_args([*base, "--no-progress"]).progress is False
    assert parser.parse_args([*base, "--quiet"]).progress is False  # the benchmark's old spelling
    assert parser.parse_args([*base, "--threads", "2"]).threads == 2
    assert "--device" in _subparsers(parser)[command]._option_string_actions


def test_seeds_is_a_count_or_a_list_as_in_a_suite():
    parser = build_parser()
    assert parser.parse_args(["evaluate"]).seeds == [0, 1, 2]
    assert parser.parse_args(["evaluate", "--seeds", "2"]).seeds == [0, 1]
    assert parser.parse_args(["evaluate", "--seeds", "0,5,9"]).seeds == [0, 5, 9]
    assert parser.parse_args(["train", "--seed", "7"]).seed == 7


def test_evaluate_trains_the_listed_seeds(tmp_path, monkeypatch, capsys):
    import robust_glo.comparison as comparison

    seen = {}

    def fake(config, out, **kw):
        seen["seeds"], seen["progress"] = config.seeds, kw["progress"]
        raise KeyboardInterrupt  # nothing to run: the configuration is what is tested

    monkeypatch.setattr(comparison, "run_comparison", fake)
    out = tmp_path / "cmp"
    argv = ["evaluate", "--dataset", "digits", "--seeds", "4,1", "--quiet", "--out", str(out)]
    assert main(argv) == 130
    assert seen == {"seeds": [4, 1], "progress": False}
    err = capsys.readouterr().err
    assert err.startswith("robust-glo: interrupted; every finished training and evaluation is saved in")


def test_train_takes_a_config_file_and_flags_win(tmp_path):
    from robust_glo.cli.train import AUTO_CHECKPOINT_EVERY, resolve_config

    path = tmp_path / "t.toml"
    path.write_text('dataset = "digits"\nlr = 0.2\nbatch-size = 32\nsteps = 40\nloss = "baikal"\n')
    parser = build_parser()
    config = resolve_config(parser.parse_args(["train", "--config", str(path), "--lr", "0.3"]))
    assert (config.dataset, config.recipe.lr, config.recipe.batch_size, config.steps, config.loss) == (
        "digits",
        0.3,
        32,
        40,
        "baikal",
    )
    assert config.checkpoint_every == AUTO_CHECKPOINT_EVERY
    config = resolve_config(parser.parse_args(["train", "--config", str(path), "--epochs", "2"]))
    assert config.steps is None and config.epochs == 2
    assert resolve_config(parser.parse_args(["train"])).steps == 1000  # no file: the defaults as before


# ---- one error prefix --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, words",
    [
        (["nope"], "invalid choice"),  # a usage error of the top level
        (["train", "--steps", "zero"], "train: argument --steps"),  # ... of a subcommand
        (["train", "--loss", "bogus", "--dataset", "digits"], "unknown loss spec 'bogus'"),  # a RobustGloError
        (["evaluate", "--seeds", "0,,1", "--out", "X"], "empty item"),
        (["evaluate", "--seeds", "1,1", "--out", "X"], "lists a seed twice"),
        (["benchmark", "quick"], "benchmark: --out DIR is required"),
        (["benchmark", "quick", "--out", "X", "--backend", "ray", "--threads", "2"], "--cpus-per-task"),
        (["evolve", "--dataset", "digits", "--popsize", "0", "--out", "X"], "popsize"),
    ],
)
def test_every_error_is_one_line_with_one_prefix_and_exit_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(ERROR_PREFIX), err
    assert words in err and "error: error" not in err and "robust-glo: error: robust-glo" not in err
    assert not (tmp_path / "X").exists()


@pytest.mark.parametrize(
    "flag, bad, valid",
    [
        ("--popsize", "0", "an integer >= 2 (CMA-ES ranks the population)"),
        ("--popsize", "2.5", "an integer >= 2"),
        ("--generations", "-1", "an integer >= 1"),
        ("--evaluations", "0", "an integer >= 1"),
        ("--steps", "0", "an integer >= 1"),
        ("--eta", "1", "an integer >= 2 (a rung keeps the best 1/eta)"),
        ("--rungs", "0", "an integer >= 1"),
        ("--topk", "0", "an integer >= 1"),
        ("--reeval-seeds", "0", "an integer >= 1"),
        ("--attack-samples", "0", "an integer >= 1"),
        ("--val-size", "-1", "an integer >= 0 (0: no validation split)"),
        ("--batch-size", "0", "an integer >= 1"),
        ("--sigma0", "0", "a positive number"),
        ("--lr", "-0.1", "a positive number"),
        ("--lr", "nan", "a positive number"),
        ("--momentum", "1", "a number in [0, 1)"),
        ("--weight-decay", "-1", "a non-negative number"),
        ("--train-fraction", "0", "a number in (0, 1]"),
        ("--clean-margin", "1", "a number in [0, 1)"),
        ("--num-cpus", "0", "an integer >= 1"),
        ("--cpus-per-task", "0", "a positive number"),
        ("--gpus-per-task", "-1", "a non-negative number (a fraction shares a GPU)"),
        ("--max-retries", "-1", "an integer >= 0"),
        ("--threads", "0", "an integer >= 1"),
        ("--split-seed", "-1", "an integer in 0 .. 2**63-1"),
    ],
)
def test_evolve_range_errors_name_the_flag_the_value_and_what_is_valid(flag, bad, valid, tmp_path, capsys):
    assert main(["evolve", "--dataset", "digits", flag, bad, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert err == f"{ERROR_PREFIX}evolve: argument {flag}: must be {valid}" + err.split(valid, 1)[1], err
    assert err.count("\n") == 1 and f"got {bad!r}" in err and "(see robust-glo evolve --help)" in err
    assert not (tmp_path / "e").exists()


def test_evolve_flag_ranges_are_the_configs(tmp_path):
    """The flags' ranges are the ones EvolveConfig.validate applies to --config files and the API: at each
    lower limit the config is accepted, one step below it refused, naming the key."""
    from robust_glo.errors import ConfigError
    from robust_glo.evolution import EvolveConfig
    from robust_glo.evolution.config import EVOLVE_BOUNDS

    base = {"dataset": "digits", "out": str(tmp_path / "e")}
    for name in ("generations", "evaluations", "popsize", "steps", "eta", "rungs", "topk", "reeval_seeds"):
        low = int(EVOLVE_BOUNDS[name].low)
        EvolveConfig.create(**base, **{name: low, "steps": max(low, 9) if name != "steps" else low})
        with pytest.raises(ConfigError, match=rf"^{name.replace('_', '-')} must be >= {low}"):
            EvolveConfig.create(**base, **{name: low - 1})
    for name, bad in (("sigma0", 0.0), ("cpus_per_task", 0.0), ("gpus_per_task", -0.5), ("lr", 0.0)):
        with pytest.raises(ConfigError, match=rf"^{name.replace('_', '-') if name != 'lr' else 'lr'} must be "):
            EvolveConfig.create(**base, **{name: bad})


@pytest.mark.parametrize(
    "seeds, words",
    [
        ("0,x", "item 'x' of '0,x' is not a seed"),
        ("0,-1", "item '-1' of '0,-1' is not a seed"),
        ("x", "'x' is neither a count nor a list of seeds"),
        ("0", "the count '0' gives no seeds"),
        ("0,,1", "'0,,1' has an empty item"),
        ("1,1", "'1,1' lists a seed twice (1)"),
    ],
)
def test_a_bad_seeds_value_names_the_bad_item_and_a_valid_list(seeds, words, tmp_path, capsys):
    assert main(["evaluate", "--seeds", seeds, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{ERROR_PREFIX}evaluate: argument --seeds: {words}; give a count N >= 1 "), err
    assert "a comma list of distinct integers in 0 .. 2**63-1, such as 0,5,9" in err and err.count("\n") == 1


def test_train_config_file_errors_name_the_file(tmp_path, capsys):
    path = tmp_path / "t.toml"
    path.write_text("lrr = 0.2\n")
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(ERROR_PREFIX) and "t.toml" in err and "unknown key 'lrr'" in err and "lr" in err


# ---- progress bars -----------------------------------------------------------------------------------------
def _bar_lines(err: str) -> list[str]:
    return [line.strip() for line in re.split(r"[\r\n]", err) if line.strip()]


def test_evolve_bar_counts_trained_candidates_with_eta_and_shows_real_fitness(tmp_path, capsys):
    argv = [
        "evolve",
        "--dataset",
        "digits",
        "--generations",
        "1",
        "--popsize",
        "6",
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--topk",
        "1",
        "--reeval-seeds",
        "1",
        "--seed",
        "3",  # gives both rejected and trained candidates (tests/test_evolution.py)
        "--backend",
        "local",
        "--out",
        str(tmp_path / "evo"),
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    rejected = int(re.search(r"\((\d+) rejected", captured.out).group(1))
    assert 0 < rejected < 6
    lines = [line for line in _bar_lines(captured.err) if line.startswith("generation 1/1")]
    final = lines[-1]
    trained = 6 - rejected
    assert f"{trained}/{trained} " in final, final  # only candidates that train are counted
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", final), final  # elapsed < remaining: an ETA
    assert "candidate" in final  # a rate per candidate
    best = float(re.search(r"best here=([0-9.]+)", final).group(1))
    accuracy = float(re.search(r"val acc=([0-9.]+)", final).group(1))
    assert 0 <= best <= 1 and abs(best - (1 - accuracy)) < 1e-3  # a fitness, not a rank band
    assert f"rejected={rejected}" in final


def test_evolve_bar_shows_nothing_best_until_a_candidate_trained():
    from robust_glo.evolution.runner.engine import _Progress

    records = [
        {"status": "rejected", "fitness": 4.8231},
        {"status": "diverged", "fitness": 2.2, "val_accuracy": 0.1},
        {"status": "failed", "fitness": 3.0},
    ]
    assert _Progress.postfix(records) == {"rejected": 1}
    records.append({"status": "trained", "fitness": 0.3, "objective": 0.25, "val_accuracy": 0.75})
    assert _Progress.postfix(records) == {"best here": "0.2500", "val acc": "0.7500", "rejected": 1}


def test_evolve_bar_starts_from_candidates_read_back_on_resume(capsys):
    from robust_glo.evolution.runner.engine import _Progress

    bar = _Progress("generation 2/3", 8, True)
    bar.show([{"status": "rejected"}] * 3 + [{"status": "trained", "fitness": 0.5, "val_accuracy": 0.5}])
    assert (bar.bar.total, bar.bar.n, bar.bar.initial) == (5, 1, 1)
    bar.show([{"status": "rejected"}] * 3 + [{"status": "trained", "fitness": 0.5, "val_accuracy": 0.5}] * 3)
    assert bar.bar.n == 3
    bar.close()


class _FakeRay:
    """Just enough of `ray` for run_pieces_ray: tasks return their log line when waited for."""

    def __init__(self):
        self.submitted = []

    def remote(self, fn):
        fake = self

        class Remote:
            def options(self, **_):
                return self

            def remote(self, payload, out, loss, seed, evaluate, threads):
                fake.submitted.append((loss, seed))
                return (loss, seed)

        return Remote()

    def wait(self, refs, num_returns=1):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        loss, seed = ref
        return f"{loss} seed {seed}: trained in 1s (ok)"


def test_ray_pieces_show_a_bar_of_pieces_with_eta_and_display_names(monkeypatch, capsys, tmp_path):
    from robust_glo.comparison import CompareConfig, parallel

    fake = _FakeRay()
    monkeypatch.setattr(parallel, "connect_ray", lambda *a, **k: (fake, False))
    monkeypatch.setattr(parallel, "_finished_before", lambda config, out, loss, seed, ev: (loss, seed) == ("ce", 0))
    config = CompareConfig(losses=["ce", LONG_SPEC], dataset="digits", seeds=[0, 1], steps=5, attacks=["fgsm"])
    echoed = []
    lines, failed = parallel.run_pieces_ray(config, tmp_path, evaluate=False, echo=echoed.append)
    assert failed == {}
    assert fake.submitted == [("ce", 1), (LONG_SPEC, 0), (LONG_SPEC, 1)]  # the finished piece is not sent
    assert echoed[0] == "[ray] 1 of 4 pieces finished before; 3 run as Ray tasks"
    assert all(LONG_SPEC not in line for line in echoed + lines)
    assert any("taylorglo[0.01, 0.00, 0.00, 0.00, 0.00, 1.00, 0.00, 0.00] seed 1" in line for line in echoed)
    bars = [line for line in _bar_lines(capsys.readouterr().err) if line.startswith("train pieces")]
    assert "1/4" in bars[0] and "4/4" in bars[-1], bars
    assert all(re.search(r"\[\d\d:\d\d<", line) for line in bars), bars  # elapsed < ETA
    assert "piece" in bars[-1]
    capsys.readouterr()
    parallel.run_pieces_ray(config, tmp_path, evaluate=False, echo=echoed.append, progress=False)
    assert capsys.readouterr().err == ""


def test_the_ray_token_auth_notice_is_dropped_and_nothing_else(caplog):
    from robust_glo.utils import ray_cluster

    ray_cluster._quiet_ray_auth_notice()
    ray_cluster._quiet_ray_auth_notice()  # idempotent
    logger = logging.getLogger(ray_cluster._RAY_AUTH_LOGGER)
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING):
        logger.warning(
            "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out. ..."
        )
        logger.warning("Token authentication is enabled but no authentication token was found")
    assert [r.getMessage() for r in caplog.records] == [
        "Token authentication is enabled but no authentication token was found"
    ]


# ---- display names -----------------------------------------------------------------------------------------
def test_long_specs_have_short_display_names():
    from robust_glo.losses import display_name, set_display_name, shorten_specs

    assert display_name("ce") == "ce" and display_name("taylorglo:[0,0,0,0,0,1,0,0]") == "taylorglo:[0,0,0,0,0,1,0,0]"
    assert display_name(LONG_SPEC) == "taylorglo[0.01, 0.00, 0.00, 0.00, 0.00, 1.00, 0.00, 0.00]"
    set_display_name(LONG_SPEC, "taylorglo (evolved)")
    try:
        assert shorten_specs(f"[attack] {LONG_SPEC} seed 0: done") == "[attack] taylorglo (evolved) seed 0: done"
    finally:
        set_display_name(LONG_SPEC, "")
    assert display_name(LONG_SPEC).startswith("taylorglo[")


def test_train_bar_and_result_line_show_the_display_name(tmp_path, capsys):
    argv = ["train", "--loss", LONG_SPEC, "--dataset", "digits", "--steps", "60", "--out", str(tmp_path / "r")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    short = "taylorglo[0.01, 0.00, 0.00, 0.00, 0.00, 1.00, 0.00, 0.00]"
    assert LONG_SPEC not in captured.err and f"{short} seed 0" in captured.err
    assert captured.out.startswith(f"{short} on digits/")
    assert re.search(r"\d+/60 \[\d\d:\d\d<\d\d:\d\d", captured.err)  # the steps bar: count and ETA
    assert main([*argv, "--quiet"]) == 0 and capsys.readouterr().err == ""  # reused; no bar either way


# ---- Ctrl-C ------------------------------------------------------------------------------------------------
def _interrupt_after_first_checkpoint(monkeypatch):
    from robust_glo.training import trainer

    original = trainer._save_checkpoint

    def save_then_stop(*args, **kwargs):
        original(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "_save_checkpoint", save_then_stop)


def _interrupt_while_training(monkeypatch):
    from robust_glo.training import trainer

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer._Loop, "run", stop)


def test_an_interrupted_train_with_a_checkpoint_says_it_resumes_and_does(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    argv = ["train", "--dataset", "digits", "--steps", "50", "--checkpoint-every", "20", "--out", str(out)]
    with monkeypatch.context() as m:
        _interrupt_after_first_checkpoint(m)
        assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"robust-glo: interrupted; re-run the same command to resume from the checkpoint at step 20 in {out}"
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 50 and not (out / "checkpoint.pt").exists()
    # The re-run says that it resumed, and from which step: as it starts, and in its result line (and
    # metrics.json records it); a re-run after that reuses the finished run and says that instead.
    first, result = capsys.readouterr().out.splitlines()
    assert first == f"resuming {out} from its checkpoint at step 20"
    assert "50 steps (resumed from the checkpoint at step 20) in " in result and "reused" not in result
    assert metrics["resumed_from"] == 20
    assert main(argv) == 0
    (again,) = capsys.readouterr().out.splitlines()
    assert "(reused finished run)" in again and "resum" not in again


def test_an_interrupted_train_without_a_checkpoint_says_it_starts_again(tmp_path, capsys, monkeypatch):
    from robust_glo.cli.train import AUTO_CHECKPOINT_EVERY

    out = tmp_path / "r"
    base = ["train", "--dataset", "digits", "--steps", "50", "--out", str(out)]
    for extra, words in (
        (["--checkpoint-every", "0"], "no checkpoint was written (--checkpoint-every 0)"),
        ([], f"it stopped before the first checkpoint (every {AUTO_CHECKPOINT_EVERY} steps)"),
    ):
        with monkeypatch.context() as m:
            _interrupt_while_training(m)
            assert main([*base, *extra]) == 130
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("robust-glo: interrupted; ") and words in err, err
        assert f"a re-run trains {out} again from step 0" in err and "resume" not in err
        assert not (out / "checkpoint.pt").exists()


def test_the_default_checkpointing_keeps_finished_runs_reusable(tmp_path, capsys):
    out = tmp_path / "r"
    argv = ["train", "--dataset", "digits", "--steps", "30", "--out", str(out)]
    assert main([*argv, "--checkpoint-every", "0"]) == 0  # made as before the default existed
    capsys.readouterr()
    assert main(argv) == 0
    assert "(reused finished run)" in capsys.readouterr().out
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 0  # trained in one go


def test_other_commands_say_what_a_rerun_does_after_ctrl_c(tmp_path, capsys, monkeypatch):
    import robust_glo.cli.evolve as evolve_command

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evolve_command, "run_evolution", stop)
    assert main(["evolve", "--dataset", "digits", "--out", str(tmp_path / "e")]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "re-run the command with --resume" in err


def test_a_checkpoint_of_other_settings_is_refused_not_resumed(tmp_path, capsys, monkeypatch):
    # A checkpoint left by a run with another learning rate is not resumed under the new one: one line,
    # exit 2, the setting that differs named, nothing overwritten.
    out = tmp_path / "r"
    argv = ["train", "--dataset", "digits", "--steps", "50", "--checkpoint-every", "20", "--out", str(out)]
    with monkeypatch.context() as m:
        _interrupt_after_first_checkpoint(m)
        assert main(argv) == 130
    capsys.readouterr()
    config_before = (out / "config.json").read_text()
    checkpoint_before = (out / "checkpoint.pt").read_bytes()
    assert main([*argv, "--lr", "0.2"]) == 2
    captured = capsys.readouterr()
    (err,) = captured.err.strip().splitlines()
    assert err.startswith("robust-glo: error: ") and "holds a checkpoint of a run with other settings (lr" in err
    assert "0.2" in err and "resuming" not in captured.out
    assert (out / "config.json").read_text() == config_before
    assert (out / "checkpoint.pt").read_bytes() == checkpoint_before
    assert main(argv) == 0  # the original settings still resume from it
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 20


@pytest.mark.parametrize(
    "argv,flag,text",
    [
        (["benchmark", "quick", "--cpus-per-task", "0"], "--cpus-per-task", "must be a positive number, got '0'"),
        (["benchmark", "quick", "--gpus-per-task", "-1"], "--gpus-per-task", "non-negative number"),
        (["benchmark", "quick", "--backend", "local", "--device", "tpu"], "--device", "unknown device 'tpu'"),
        (["train", "--dataset", "digits", "--device", "tpu"], "--device", "unknown device 'tpu'"),
        (["evaluate", "--dataset", "digits", "--device", "tpu"], "--device", "unknown device 'tpu'"),
    ],
)
def test_benchmark_and_device_flags_are_checked_as_they_are_parsed(argv, flag, text, tmp_path, capsys):
    # Refused before any work: no Ray cluster, no files in --out (the fresh-user check found both).
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("robust-glo: error: ") and f"argument {flag}: " in err and text in err
    assert not out.exists()


def test_an_unknown_flag_points_to_its_command_help(capsys):
    assert main(["benchmark", "quick", "--seeds", "3"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err == ("robust-glo: error: benchmark: unrecognized arguments: --seeds 3 (see robust-glo benchmark --help)")
