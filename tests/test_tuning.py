"""Tuning with Optuna end to end at a tiny budget: the trial table, the tuned presets that --preset tuned reads for
each method, the validation objective, resuming without rerunning finished trials, retrying a failed trial with its
parameters, and the one-line errors. Budgets are tiny: these check plumbing, not tuning quality."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from cli import load_script  # noqa: E402

from oversight_rl.engine import config  # noqa: E402
from oversight_rl.experiments import tuning  # noqa: E402
from oversight_rl.rundir.files import SUMMARY, read_csv, read_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = "--total-env-steps 2048 --num-envs 16 --num-steps 8 --eval-envs 16 --eval-every 1024".split()
SMALL = ["--trials", "1", "--allow-few-trials", "--seeds", "1000", "--validation-envs", "64"]


tune_cli, train_cli, sweep_cli = (load_script(name) for name in ("tune_methods", "train_policy", "sweep_oversight"))


def tune(directory: Path, *flags: str) -> int:
    files = ["--csv", str(directory / "tuning.csv"), "--presets-file", str(directory / "presets.json")]
    return tune_cli.main([*TINY, *SMALL, "--out", str(directory / "tuning"), *files, *flags])


def trial_counts(directory: Path) -> dict[str, int]:
    storage = optuna.storages.RDBStorage(f"sqlite:///{directory / 'tuning' / tuning.STORAGE}")
    return {name: len(study.trials) for name, study in tuning.studies(storage).items()}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    """routing and naive, one trial each, on one tuning seed."""
    directory = tmp_path_factory.mktemp("tuned")
    assert tune(directory, "--methods", "routing", "naive") == 0
    return directory


def test_every_method_gets_its_trials_in_the_table(tuned):
    rows = {row["method"]: row for row in read_csv(tuned / "tuning.csv")}
    assert set(rows) == {"routing", "naive"}
    for row in rows.values():
        assert set(tuning.SPACE) <= set(row) and row["trial"] == 0 and row["best"] == "True"
        assert -1.0 <= row["objective"] <= 1.0 and row["seeds"] == 1000 and row["oversight"] == 0.1
        assert row["total_env_steps"] == 2048 and row["trials"] == 1
        assert 1e-4 <= row["lr"] <= 3e-3 and row["width"] in (32, 64, 128)
    assert 0.01 <= rows["routing"]["gate_coef"] <= 1.0
    assert math.isnan(rows["naive"]["gate_coef"])  # a single expert has no gate: not searched


def test_the_objective_is_the_deployed_validation_return_not_the_test_one(tuned):
    row = next(row for row in read_csv(tuned / "tuning.csv") if row["method"] == "routing")
    run_dir = tuned / "tuning" / "routing" / "trial-000" / "routing-p0.1-s1000"
    cfg = config.TrainConfig.from_saved(read_json(run_dir / "config.json"))
    assert row["objective"] == pytest.approx(tuning.validation_return(run_dir, cfg, 64))
    test_return = read_json(run_dir / SUMMARY)["variants"]["diamond"]["final"]["true_return"]
    assert row["objective"] != pytest.approx(test_return)  # other episodes (and more of them)


def test_preset_tuned_picks_each_methods_best_setting(tuned, monkeypatch):
    monkeypatch.setattr(config, "TUNED_PRESETS", tuned / "presets.json")
    rows = {row["method"]: row for row in read_csv(tuned / "tuning.csv")}
    presets = json.loads((tuned / "presets.json").read_text())["methods"]
    assert set(presets) == {"routing", "naive"}
    for method in ("routing", "naive"):
        args = train_cli.parse(["--preset", "tuned", "--method", method])
        assert (args.method, args.preset) == (method, "tuned")
        assert (args.lr, args.width, args.total_env_steps) == (rows[method]["lr"], rows[method]["width"], 2048)
        assert args.anneal_lr == (rows[method]["anneal_lr"] == "True")
    assert train_cli.parse(["--preset", "tuned", "--method", "routing"]).gate_coef == rows["routing"]["gate_coef"]
    assert train_cli.parse(["--preset", "tuned", "--method", "naive", "--lr", "0.002"]).lr == 0.002  # a flag wins
    sweep = sweep_cli.parse(["--preset", "tuned", "--methods", "routing", "naive", "--seeds", "2", "--width", "16"])
    for point in sweep.grid():
        assert (point.lr, point.width, point.preset) == (rows[point.method]["lr"], 16, "tuned")


def test_rerunning_a_finished_tuning_runs_no_trial(tuned, capsys):
    runs = sorted((tuned / "tuning").glob("*/trial-*/*/summary.json"))
    times = [path.stat().st_mtime_ns for path in runs]
    before = trial_counts(tuned)
    assert tune(tuned, "--methods", "routing", "naive") == 0
    assert trial_counts(tuned) == before == {"routing": 1, "naive": 1}
    assert [path.stat().st_mtime_ns for path in runs] == times and len(runs) == 2
    assert "routing: 0 run now, 1 completed" in capsys.readouterr().out


def test_a_failed_trial_is_tried_again_with_its_parameters(tmp_path, monkeypatch, capsys):
    real = tuning.train_population

    def crash(*args, **kwargs):
        raise RuntimeError("worker died")

    monkeypatch.setattr(tuning, "train_population", crash)
    assert tune(tmp_path, "--methods", "naive") == 1
    assert "a trial failed (RuntimeError: worker died)" in capsys.readouterr().err
    monkeypatch.setattr(tuning, "train_population", real)
    assert tune(tmp_path, "--methods", "naive") == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'tuning' / tuning.STORAGE}")
    failed, retried = tuning.studies(storage)["naive"].trials
    assert failed.state == optuna.trial.TrialState.FAIL and retried.state == optuna.trial.TrialState.COMPLETE
    assert retried.params == failed.params and retried.user_attrs["resumes"] == 0
    assert (tmp_path / "tuning" / "naive" / "trial-000" / "naive-p0.1-s1000" / SUMMARY).exists()
    assert [row["trial"] for row in read_csv(tmp_path / "tuning.csv")] == [1]


def test_a_resumed_tuning_draws_new_settings_instead_of_replaying_its_first(tmp_path):
    """Each invocation is a new sampler: seeded alike, it would draw trial 0's settings again."""
    assert tune(tmp_path, "--methods", "naive") == 0
    assert tune(tmp_path, "--methods", "naive", "--trials", "2") == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'tuning' / tuning.STORAGE}")
    first, second = tuning.studies(storage)["naive"].trials
    assert first.params != second.params
    assert [row["trial"] for row in read_csv(tmp_path / "tuning.csv")] == [0, 1]


def test_a_trial_that_repeats_a_completed_one_is_neither_counted_nor_listed(tmp_path):
    assert tune(tmp_path, "--methods", "naive") == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'tuning' / tuning.STORAGE}")
    study = tuning.studies(storage)["naive"]
    study.enqueue_trial(study.trials[0].params)  # what a resumed tuning replayed before its sampler was reseeded
    study.optimize(lambda trial: tuning.suggest(trial, "naive") and 0.5, n_trials=1)
    assert len(study.trials) == 2 and len(tuning.completed(study)) == 1
    assert tune(tmp_path, "--methods", "naive", "--trials", "2") == 0  # one more trial: the repeat did not count
    assert [row["trial"] for row in read_csv(tmp_path / "tuning.csv")] == [0, 2]


def test_a_method_gets_no_preset_before_its_trials_are_complete(tmp_path):
    """Another method's tuning writes the presets too: an unfinished one must not become --preset tuned."""
    assert tune(tmp_path, "--methods", "naive") == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'tuning' / tuning.STORAGE}")
    assert set(tuning.preset_entries(storage, 1)) == {"naive"}
    assert tuning.preset_entries(storage, 2) == {}


def test_a_tuning_recorded_before_a_setting_existed_resumes(tmp_path, monkeypatch):
    """A study recorded without a setting added since (its value then: ADDED_SETTINGS) resumes, as sweeps do."""
    assert tune(tmp_path, "--methods", "naive") == 0
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'tuning' / tuning.STORAGE}")
    study = tuning.studies(storage)["naive"]
    record = study.user_attrs["tuning"]
    record["train"].pop("label_noise")  # as recorded before --label-noise existed
    study.set_user_attr("tuning", record)
    assert tune(tmp_path, "--methods", "naive", "--trials", "2") == 0
    assert tune(tmp_path, "--methods", "naive", "--trials", "3", "--label-noise", "0.1") == 2  # another value: refused


def test_other_settings_in_the_same_tuning_directory_are_refused(tuned, capsys):
    assert tune(tuned, "--methods", "naive", "--num-envs", "8") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "other settings" in error and "num_envs" in error and "\n" not in error


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--trials", "4"], "--trials"),  # fewer than 16 without --allow-few-trials
        (["--allow-few-trials", "--trials", "0"], "--trials"),
        (["--seeds", "3"], "--seeds"),  # an evaluation seed
        (["--methods", "bogus"], "--methods"),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_any_work(tmp_path, capsys, flags, named):
    out = tmp_path / "tuning"
    assert tune_cli.main([*TINY, "--out", str(out), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and named in error and "\n" not in error
    assert not out.exists()


def test_without_optuna_the_script_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    assert tune(tmp_path, "--methods", "naive") == 2
    error = capsys.readouterr().err.strip()
    assert error == "error: tuning needs Optuna: pip install -e '.[tune]'"


def test_preset_tuned_without_tuning_results_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "TUNED_PRESETS", tmp_path / "none.json")
    assert train_cli.main(["--preset", "tuned", "--out", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --preset tuned: no tuning results yet") and "\n" not in error
    assert sweep_cli.main(["--preset", "tuned", "--out", str(tmp_path / "sweep")]) == 2
    assert "no tuning results yet" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweep").exists()


def test_the_script_documents_the_search_space():
    documented = [line.split()[0] for line in tune_cli.__doc__.splitlines() if line.startswith("    ") and line.split()]
    assert set(tuning.SPACE) <= set(documented)


@pytest.fixture
def published(tmp_path, monkeypatch) -> dict[str, Path]:
    """Where --publish writes, moved into ``tmp_path`` (the table is relative to the working directory)."""
    monkeypatch.chdir(tmp_path)
    presets = tmp_path / "package" / "tuned_presets.json"
    monkeypatch.setattr(tuning, "TUNED_PRESETS", presets)
    return {"csv": tmp_path / tuning.PUBLISHED_CSV, "presets": presets}


def test_a_tuning_with_its_own_out_writes_nothing_outside_it(published, tmp_path):
    out = tmp_path / "smoke"
    assert tune_cli.main([*TINY, *SMALL, "--methods", "naive", "--out", str(out)]) == 0
    assert not published["csv"].exists() and not published["presets"].exists()
    assert [row["method"] for row in read_csv(out / "tuning.csv")] == ["naive"]
    assert set(json.loads((out / "tuned_presets.json").read_text())["methods"]) == {"naive"}


def test_publishing_needs_a_full_tuning(published, tmp_path, capsys):
    out = tmp_path / "smoke"
    assert tune_cli.main([*TINY, *SMALL, "--methods", "naive", "--out", str(out), "--publish"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --publish needs --trials >= 16, got 1") and "\n" not in error
    assert not out.exists() and not published["csv"].exists() and not published["presets"].exists()


def test_publish_writes_the_table_and_merges_the_presets(published, tmp_path, monkeypatch):
    published["presets"].parent.mkdir()
    kept = {"settings": {"lr": 0.001}, "trials": 16}
    published["presets"].write_text(json.dumps({"methods": {"filtering": kept}}))
    monkeypatch.setattr(tuning, "MIN_TRIALS", 1)  # a full tuning, for this test: one trial
    assert tune_cli.main([*TINY, *SMALL, "--methods", "naive", "--out", str(tmp_path / "t"), "--publish"]) == 0
    assert [row["method"] for row in read_csv(published["csv"])] == ["naive"]
    presets = json.loads(published["presets"].read_text())["methods"]
    assert presets["filtering"] == kept and presets["naive"]["trials"] == 1


def test_publishing_one_method_keeps_the_other_methods_rows(published, tmp_path, monkeypatch):
    """A study of one method (routing under a new estimator, say) replaces that method's rows of docs/tuning.csv and
    leaves every other method's rows as they were written."""
    published["csv"].parent.mkdir(parents=True)
    header = "method,trial,lr,objective\n"
    others = "filtering,0,0.001,0.5\nfiltering,1,0.0003,0.25\nnaive,0,0.002,0.125\nnaive,1,0.004,0.0625\n"
    published["csv"].write_text(header + others)
    monkeypatch.setattr(tuning, "MIN_TRIALS", 1)
    assert tune_cli.main([*TINY, *SMALL, "--methods", "naive", "--out", str(tmp_path / "t"), "--publish"]) == 0
    with published["csv"].open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["method"] for row in rows] == ["filtering", "filtering", "naive"]
    kept = [(row["trial"], row["lr"], row["objective"]) for row in rows[:2]]
    assert kept == [("0", "0.001", "0.5"), ("1", "0.0003", "0.25")]  # as written, not reformatted
    assert rows[2]["lr"] != "0.002"  # naive's earlier row replaced by this study's
