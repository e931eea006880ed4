"""Sweeps and their plots: the grid runs serially, in processes and on Ray; re-runs resume; failures are recorded;
plots and results.csv show every expected run, missing ones included. Budgets are tiny: these check plumbing."""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
from cli import load_script

import oversight_rl.experiments.sweep as sweep_module
from oversight_rl.analysis.stats import bootstrap_ci
from oversight_rl.engine.launch import saved_config
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import (
    CHECKPOINT,
    CONFIG,
    ERROR,
    EVAL_CSV,
    SUMMARY,
    TRAIN_CSV,
    read_csv,
    read_json,
    run_name,
    save_torch,
    write_json,
)
from oversight_rl.rundir.gather import gather
from oversight_rl.rundir.status import run_status

ROOT = Path(__file__).resolve().parents[1]
TINY = "--total-env-steps 2048 --num-envs 16 --num-steps 8 --eval-envs 16 --eval-every 1024 --width 16".split()
GRID = "--oversight 0.1 1 --methods routing naive --seeds 1".split()
EXPECTED_RUNS = {run_name(m, p, 0) for m in ("routing", "naive") for p in (0.1, 1.0)}
FIGURES = ("learning_curves.png", "return_vs_oversight.png", "hacking_vs_oversight.png")
VOLATILE_COLUMNS = ("wall_s", "run")  # differ between two identical runs


sweep_cli = load_script("sweep_oversight")
plot_cli = load_script("plot_curves")


def sweep(out: Path, *flags: str) -> int:
    return sweep_cli.main([*TINY, "--out", str(out), *flags])


def run_dirs(sweep_dir: Path) -> set[str]:
    return {path.parent.name for path in sweep_dir.glob(f"*/{CONFIG}")}


def comparable(rows: list[dict], drop: tuple[str, ...] = VOLATILE_COLUMNS) -> list[dict]:
    """Rows without the ``drop`` columns, NaN (empty cells) as None so that rows compare equal."""
    return [{k: None if v != v else v for k, v in row.items() if k not in drop} for row in rows]


def file_times(sweep_dir: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sweep_dir.glob("*/*")}


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory) -> Path:
    """2 oversight levels x 2 methods x 1 seed, run serially in this process (workers=1)."""
    out = tmp_path_factory.mktemp("sweeps") / "serial"
    assert sweep(out, *GRID, "--workers", "1") == 0
    return out


# ----- the command line -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--oversight", "0.1", "1.5"], "--oversight"),
        (["--oversight", "-0.1"], "--oversight"),
        (["--methods", "routing", "bogus"], "--methods"),
        (["--seeds", "0"], "--seeds"),
        (["--workers", "0"], "--workers"),
        (["--lr", "-1"], "--lr"),  # a training flag, checked on every grid point
        (["--ray-address", "auto"], "--ray-address"),
    ],
)
def test_bad_flags_exit_2_with_one_line_before_any_work(tmp_path, capsys, flags, named):
    out = tmp_path / "sweep"
    assert sweep(out, *flags) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and named in error and "\n" not in error
    assert not out.exists()


def test_training_flags_and_preset_reach_every_grid_point():
    config = sweep_cli.parse(["--preset", "paper", "--lr", "3e-4", "--oversight", "0.01", "0.1", "--seeds", "2"])
    points = config.grid()
    assert len(points) == 2 * 4 * 2
    assert {(p.algo, p.width, p.lr, p.preset) for p in points} == {("reinforce", 256, 3e-4, "paper")}
    assert {(p.method, p.oversight, p.seed) for p in points} == {
        (m, o, s) for m in sweep_module.DEFAULT_METHODS for o in (0.01, 0.1) for s in (0, 1)
    }


def test_other_training_settings_in_the_same_sweep_directory_are_refused(serial_sweep, capsys):
    before = (serial_sweep / "sweep.json").read_text()
    assert sweep(serial_sweep, *GRID, "--workers", "1", "--lr", "0.01") == 2
    assert "lr: 0.001 -> 0.01" in capsys.readouterr().err
    assert (serial_sweep / "sweep.json").read_text() == before


# ----- running and resuming ---------------------------------------------------------------------------------------


def test_a_sweep_recorded_before_a_setting_existed_resumes_with_the_value_it_computed(tmp_path, capsys):
    """Runs and sweeps written before --expert-heads existed computed a shared head: they are read, compared and
    resumed as such, and still refuse another value."""
    out, flags = tmp_path / "sweep", ["--oversight", "0.1", "--methods", "routing", "--workers", "1"]
    assert sweep(out, *flags, "--seeds", "1") == 0
    for path in [out / "sweep.json", *out.glob(f"*/{CONFIG}")]:
        record = read_json(path)
        (record["train"] if "train" in record else record).pop("expert_heads")
        write_json(path, record)
    assert saved_config(out / "routing-p0.1-s0").expert_heads == "shared"
    capsys.readouterr()
    assert sweep(out, *flags, "--seeds", "2") == 0
    assert "1 trained, 0 resumed, 1 already done, 0 failed" in capsys.readouterr().out
    assert sweep(out, *flags, "--seeds", "2", "--expert-heads", "separate") == 2
    assert "expert_heads: 'shared' -> 'separate'" in capsys.readouterr().err


def test_serial_sweep_writes_every_run_sweep_json_and_results(serial_sweep):
    assert run_dirs(serial_sweep) == EXPECTED_RUNS
    assert all((serial_sweep / name / SUMMARY).exists() for name in EXPECTED_RUNS)
    record = read_json(serial_sweep / "sweep.json")
    assert (record["oversight"], record["methods"], record["seeds"]) == ([0.1, 1.0], ["routing", "naive"], 1)
    assert record["train"]["total_env_steps"] == 2048 and "method" not in record["train"]
    rows = read_csv(serial_sweep / "results.csv")
    assert {row["run"] for row in rows} == EXPECTED_RUNS
    assert {row["status"] for row in rows} == {"done"}
    assert {row["deployed"] for row in rows if row["method"] == "routing"} == {"diamond"}
    assert all(-1 <= row["true_return"] <= 1 for row in rows)
    assert "best_true_return" not in rows[0]  # picked on the test episodes: not a result


def test_rerunning_a_finished_sweep_does_no_work(serial_sweep, capsys):
    times = file_times(serial_sweep)
    assert sweep(serial_sweep, *GRID, "--workers", "1") == 0
    assert "0 trained, 0 resumed, 4 already done, 0 failed" in capsys.readouterr().out
    assert file_times(serial_sweep) == times


def test_process_pool_matches_the_serial_sweep(serial_sweep, tmp_path):
    out = tmp_path / "pool"
    assert sweep(out, *GRID, "--workers", "2") == 0
    assert run_dirs(out) == EXPECTED_RUNS
    assert comparable(read_csv(out / "results.csv")) == comparable(read_csv(serial_sweep / "results.csv"))


def test_ray_local_cluster_matches_the_serial_sweep(serial_sweep, tmp_path):
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray"
    try:
        assert sweep(out, *GRID, "--backend", "ray", "--workers", "2") == 0
    finally:
        ray.shutdown()
    assert run_dirs(out) == EXPECTED_RUNS
    assert comparable(read_csv(out / "results.csv")) == comparable(read_csv(serial_sweep / "results.csv"))


def test_a_ray_address_where_nothing_listens_is_one_line_before_any_work(tmp_path, capsys):
    """Ray itself would wait minutes there; the sweep tries the address first."""
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    with socket.socket() as bound:  # a port that is taken but not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{bound.getsockname()[1]}"
        start = time.monotonic()
        assert sweep(out, "--backend", "ray", "--ray-address", address) == 2
    assert time.monotonic() - start < 60
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"error: --ray-address {address}: no Ray cluster answers there") and "\n" not in error
    assert "'ray start --head'" in error and "drop --ray-address to start a local one" in error
    assert not out.exists()


def test_ray_finding_no_cluster_is_the_same_one_line(tmp_path, monkeypatch, capsys):
    """--ray-address auto with no cluster running: ray.init raises ConnectionError, as Ray does."""
    ray = pytest.importorskip("ray")

    def no_cluster(*args, **kwargs):
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by setting `--address` flag"
            " or `RAY_ADDRESS` environment variable."
        )

    monkeypatch.setattr(ray, "init", no_cluster)
    out = tmp_path / "sweep"
    assert sweep(out, "--backend", "ray", "--ray-address", "auto") == 2
    error = capsys.readouterr().err.strip()
    assert error == (
        "error: --ray-address auto: no Ray cluster answers there (Could not find any running Ray instance): start one"
        " with 'ray start --head' (then --ray-address auto), or drop --ray-address to start a local one"
    )
    assert not out.exists()


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path, monkeypatch, capsys):
    """Every grid point shares its settings, so no flag can make exactly one run fail; instead the train function
    the serial (in-process) backend calls is replaced by one that fails for naive only."""
    out, real_train = tmp_path / "sweep", sweep_module.train_population

    def train_or_fail(configs, run_dirs, resume=None, progress=True):
        if configs[0].method == "naive":
            raise RuntimeError("injected failure")
        return real_train(configs, run_dirs, resume, progress)

    monkeypatch.setattr(sweep_module, "train_population", train_or_fail)
    flags = ["--oversight", "0.1", "--methods", "routing", "naive", "--seeds", "1", "--workers", "1"]
    assert sweep(out, *flags) == 1
    assert "1 failed (naive-p0.1-s0: RuntimeError: injected failure)" in capsys.readouterr().out
    failed = out / "naive-p0.1-s0"
    error = read_json(failed / ERROR)
    assert (error["type"], error["message"]) == ("RuntimeError", "injected failure")
    assert "train_or_fail" in error["traceback"]
    assert run_status(out / "routing-p0.1-s0") == "done" and run_status(failed) == "failed"
    rows = {row["method"]: row for row in read_csv(out / "results.csv")}
    assert (rows["naive"]["status"], rows["naive"]["reason"]) == ("failed", "RuntimeError: injected failure")

    monkeypatch.setattr(sweep_module, "train_population", real_train)
    assert sweep(out, *flags) == 0  # the failed run is trained again; the finished one is left alone
    assert "1 trained, 0 resumed, 1 already done, 0 failed" in capsys.readouterr().out
    assert run_status(failed) == "done" and (failed / ERROR).exists()  # the error record is kept


def test_an_interrupted_run_is_resumed_not_restarted(tmp_path, monkeypatch, capsys):
    out, real_save = tmp_path / "sweep", Trainer.save

    def save_then_interrupt(trainer, k):
        real_save(trainer, k)
        raise KeyboardInterrupt  # as if Ctrl-C arrived right after the first checkpoint

    monkeypatch.setattr(Trainer, "save", save_then_interrupt)
    flags = ["--oversight", "0.1", "--methods", "routing", "--seeds", "1", "--workers", "1"]
    assert sweep(out, *flags) == 130
    run_dir = out / "routing-p0.1-s0"
    assert (run_dir / CHECKPOINT).exists() and not (run_dir / SUMMARY).exists()
    assert run_status(run_dir) == "interrupted"
    assert gather(out).rows[0]["status"] == "interrupted"
    before = read_csv(run_dir / TRAIN_CSV)
    assert 0 < len(before) < 16  # 2048 steps / (16 envs x 8 steps) = 16 updates

    monkeypatch.setattr(Trainer, "save", real_save)
    calls = []
    real_train = sweep_module.train_population

    def record_call(configs, run_dirs, resume=None, progress=True):
        calls.append(resume)
        return real_train(configs, run_dirs, resume, progress)

    monkeypatch.setattr(sweep_module, "train_population", record_call)
    assert sweep(out, *flags) == 0
    assert calls == [[True, False]]  # the lone run resumes beside a fresh twin, as it first trained
    assert "0 trained, 1 resumed" in capsys.readouterr().out
    after = read_csv(run_dir / TRAIN_CSV)
    assert len(after) == 16  # the first updates were kept (wall_s included), not redone
    assert comparable(after[: len(before)], drop=()) == comparable(before, drop=())


# ----- results and plots ------------------------------------------------------------------------------------------


def test_plots_and_results_show_missing_and_failed_runs(serial_sweep, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(serial_sweep, sweep_dir)
    shutil.rmtree(sweep_dir / "naive-p1-s0")
    (sweep_dir / "routing-p0.1-s0" / SUMMARY).unlink()
    (sweep_dir / "routing-p0.1-s0" / ERROR).write_text('{"type": "ValueError", "message": "bad\\nmore"}')
    figures = tmp_path / "figures"

    assert plot_cli.main([str(sweep_dir), "--out", str(figures)]) == 0

    for name in FIGURES:
        assert (figures / name).stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert "missing (1): naive-p1-s0" in printed and "failed: routing-p0.1-s0 (ValueError: bad)" in printed
    status = {row["run"]: row["status"] for row in read_csv(figures / "results.csv")}
    assert status == {**dict.fromkeys(EXPECTED_RUNS, "done"), "naive-p1-s0": "missing", "routing-p0.1-s0": "failed"}


DAMAGE = {  # id: (file under the sweep directory, new content)
    "summary-garbage": ("routing-p0.1-s0/summary.json", b"garbage"),
    "summary-truncated": ("routing-p0.1-s0/summary.json", 60),
    "summary-empty": ("routing-p0.1-s0/summary.json", b""),
    "summary-wrong-shape": ("routing-p0.1-s0/summary.json", b'{"deployed": "diamond"}'),
    "config-truncated": ("routing-p0.1-s0/config.json", 60),
    "config-empty": ("routing-p0.1-s0/config.json", b""),
    "eval-empty": ("routing-p0.1-s0/eval.csv", b""),
    "eval-truncated": ("routing-p0.1-s0/eval.csv", 400),
    "eval-garbage": ("routing-p0.1-s0/eval.csv", bytes(range(256))),
    "eval-header-only": ("routing-p0.1-s0/eval.csv", -1),
}
REASONS = {  # id: (status, the start of the reason)
    "summary-garbage": ("unreadable", "summary.json: ValueError: "),
    "summary-truncated": ("unreadable", "summary.json: ValueError: "),
    "summary-empty": ("unreadable", "summary.json: empty file"),
    "summary-wrong-shape": ("unreadable", "summary.json: KeyError: missing 'variants'"),
    "config-truncated": ("unreadable", "config.json: ValueError: "),
    "config-empty": ("unreadable", "config.json: empty file"),
    "eval-empty": ("done", "eval.csv: empty file"),
    "eval-truncated": ("done", "eval.csv: line "),
    "eval-garbage": ("done", "eval.csv: "),
    "eval-header-only": ("done", "eval.csv: no evaluations"),
}


def damage(path: Path, content) -> None:
    """Replace a file's content: bytes as given, a positive int keeps that many leading bytes (a file cut short),
    -1 keeps the first line only."""
    data = path.read_bytes()
    if isinstance(content, int):
        content = data.splitlines(keepends=True)[0] if content < 0 else data[:content]
    path.write_bytes(content)


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_file_is_listed_and_the_rest_still_drawn(serial_sweep, tmp_path, capsys, case):
    """Fault injection: one damaged file of one run. Its run is listed with the file and the error (printed and in
    results.csv); every other run is still read and drawn; the script exits 0."""
    sweep_dir, figures = tmp_path / "sweep", tmp_path / "figures"
    shutil.copytree(serial_sweep, sweep_dir)
    name, content = DAMAGE[case]
    damage(sweep_dir / name, content)
    status, reason = REASONS[case]

    assert plot_cli.main([str(sweep_dir), "--out", str(figures)]) == 0

    for figure in FIGURES:
        assert (figures / figure).stat().st_size > 10_000
    rows = {row["run"]: row for row in read_csv(figures / "results.csv")}
    damaged = rows.pop("routing-p0.1-s0")
    assert damaged["status"] == status and damaged["reason"].startswith(reason), damaged["reason"]
    assert {row["status"] for row in rows.values()} == {"done"} and len(rows) == 3
    assert all(row["reason"] != row["reason"] for row in rows.values())  # empty cells read back as NaN
    label = "unreadable" if status == "unreadable" else "no learning curve"
    printed = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert f"{label}: routing-p0.1-s0 ({damaged['reason']})" in printed
    results = gather(sweep_dir)
    assert {(c.method, c.oversight) for c in results.curves} == {
        ("routing", 1.0), ("naive", 0.1), ("naive", 1.0)
    }  # fmt: skip
    if status == "done":  # its final values are still drawn; only the curve is lost
        final = read_json(serial_sweep / "routing-p0.1-s0" / SUMMARY)["variants"]["diamond"]["final"]
        assert results.rows[0]["true_return"] == final["true_return"]


def test_a_damaged_error_record_still_lists_the_failed_run(serial_sweep, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(serial_sweep, sweep_dir)
    (sweep_dir / "naive-p1-s0" / SUMMARY).unlink()
    (sweep_dir / "naive-p1-s0" / ERROR).write_text('{"type": "ValueError", "mess')
    assert plot_cli.main([str(sweep_dir), "--out", str(tmp_path / "figures")]) == 0
    printed = capsys.readouterr().out
    assert "failed: naive-p1-s0 (error.json: ValueError: " in printed


def test_a_damaged_sweep_json_falls_back_to_the_runs_on_disk(serial_sweep, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(serial_sweep, sweep_dir)
    damage(sweep_dir / "sweep.json", 30)
    assert plot_cli.main([str(sweep_dir), "--out", str(tmp_path / "figures")]) == 0
    printed = capsys.readouterr().out
    assert "note: sweep.json: ValueError: " in printed and "the grid is the runs found on disk" in printed
    rows = read_csv(tmp_path / "figures" / "results.csv")
    assert {row["run"] for row in rows} == EXPECTED_RUNS and {row["status"] for row in rows} == {"done"}
    assert [row["method"] for row in rows] == ["routing", "routing", "naive", "naive"]  # the package's order


def test_a_stray_directory_with_a_damaged_config_is_listed(serial_sweep, tmp_path, capsys):
    sweep_dir = tmp_path / "sweep"
    shutil.copytree(serial_sweep, sweep_dir)
    (sweep_dir / "copy of a run").mkdir()
    (sweep_dir / "copy of a run" / CONFIG).write_text("[")
    assert plot_cli.main([str(sweep_dir), "--out", str(tmp_path / "figures")]) == 0
    assert "unreadable: copy of a run (config.json: ValueError: " in capsys.readouterr().out
    rows = {row["run"]: row for row in read_csv(tmp_path / "figures" / "results.csv")}
    assert rows["copy of a run"]["status"] == "unreadable" and len(rows) == 5


def test_plot_script_refuses_an_out_that_is_a_file(serial_sweep, tmp_path, capsys):
    out = tmp_path / "figures.png"
    out.write_text("not a directory")
    assert plot_cli.main([str(serial_sweep), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --out ") and "is an existing file" in error and "\n" not in error
    assert out.read_text() == "not a directory"


def test_plot_script_help_names_the_default_out_once(capsys):
    with pytest.raises(SystemExit):
        plot_cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "(default: the sweep directory)" in text and "(default: None)" not in text


def test_plot_script_refuses_a_directory_without_runs(tmp_path, capsys):
    assert plot_cli.main([str(tmp_path)]) == 2
    assert "no sweep.json" in capsys.readouterr().err


def test_run_status_reads_the_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    assert run_status(run_dir) == "missing"
    run_dir.mkdir()
    assert run_status(run_dir) == "interrupted"  # started, nothing to resume from: trained again
    (run_dir / CHECKPOINT).write_text("")
    (run_dir / ERROR).write_text("{}")
    os.utime(run_dir / CHECKPOINT, ns=(1, 1))
    assert run_status(run_dir) == "failed"
    os.utime(run_dir / CHECKPOINT, ns=(2**62, 2**62))  # a later attempt checkpointed after the failure
    assert run_status(run_dir) == "interrupted"
    for name in (TRAIN_CSV, EVAL_CSV):
        (run_dir / name).write_text("update,env_steps\n1,128\n2,256\n")
    (run_dir / SUMMARY).write_text('{"updates": 1}')
    assert run_status(run_dir) == "interrupted"  # the summary of another attempt: the CSVs reached update 2
    (run_dir / SUMMARY).write_text('{"updates": 2}')
    assert run_status(run_dir) == "interrupted"  # its checkpoint is empty: nothing could load or resume it
    save_torch(run_dir / CHECKPOINT, {"counters": (2, 256, 0.0)})
    assert run_status(run_dir) == "done"


def test_bootstrap_interval():
    assert bootstrap_ci([0.5]) == (0.5, 0.5, 0.5)
    assert all(x != x for x in bootstrap_ci([float("nan")]))
    mean, low, high = bootstrap_ci([0.0, 1.0, 0.0, 1.0, float("nan")])
    assert mean == 0.5 and 0.0 <= low < 0.5 < high <= 1.0
    assert bootstrap_ci([0.1, 0.9, 0.4], seed=3) == bootstrap_ci([0.1, 0.9, 0.4], seed=3)


# ----- populations ------------------------------------------------------------------------------------------------


def test_sweep_json_records_the_populations(serial_sweep):
    """Routing and naive each train their two oversight levels as one population (same budget, same settings)."""
    record = read_json(serial_sweep / "sweep.json")
    assert sorted(map(sorted, record["populations"])) == [
        sorted(run_name("naive", p, 0) for p in (0.1, 1.0)),
        sorted(run_name("routing", p, 0) for p in (0.1, 1.0)),
    ]


def test_population_size_splits_populations_and_the_oracle_groups_by_budget():
    config = sweep_cli.parse(["--methods", "routing", "oracle", "--oversight", "0.1", "1", "--seeds", "3"])
    names = [[(c.method, c.oversight, c.seed) for c in members] for members in sweep_module.populations(config)]
    assert [len(members) for members in names] == [6, 3, 3]  # routing; oracle per budget (oversight x 2M steps)
    assert {m[1] for m in names[1]} == {0.1} and {m[1] for m in names[2]} == {1.0}
    one = sweep_cli.parse(["--methods", "routing", "--oversight", "0.1", "1", "--seeds", "3", "--population-size", "4"])
    assert [len(members) for members in sweep_module.populations(one)] == [4, 2]


def test_a_finished_member_of_a_population_is_never_trained_again(serial_sweep, tmp_path, monkeypatch, capsys):
    out = tmp_path / "sweep"
    shutil.copytree(serial_sweep, out)
    unfinished = out / run_name("routing", 1.0, 0)
    (unfinished / SUMMARY).unlink()  # as if interrupted after its last checkpoint
    calls = []
    real_train = sweep_module.train_population

    def record_call(configs, run_dirs, resume=None, progress=True):
        calls.append([Path(d).name for d in run_dirs])
        return real_train(configs, run_dirs, resume, progress)

    monkeypatch.setattr(sweep_module, "train_population", record_call)
    finished = out / run_name("routing", 0.1, 0)
    times = {p.name: p.stat().st_mtime_ns for p in finished.iterdir()}
    assert sweep(out, *GRID, "--workers", "1") == 0
    assert calls == [[unfinished.name, "twin"]]  # its mates are finished: a twin keeps its population's shape
    assert "0 trained, 1 resumed, 3 already done" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in finished.iterdir()} == times
    assert (unfinished / SUMMARY).exists()


def test_a_method_from_the_users_own_file_trains_in_sweep_workers(tmp_path, monkeypatch):
    """docs/examples/decisive_gate.py adds a method without touching the package; spawned workers import it too."""
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))  # spawned workers inherit the parent's sys.path
    out = tmp_path / "sweep"
    flags = ["--oversight", "0.5", "--methods", "routing", "decisive_gate:DECISIVE_GATE", "--seeds", "1"]
    assert sweep(out, *flags, "--workers", "2") == 0
    run_dir = out / run_name("decisive_gate:DECISIVE_GATE", 0.5, 0)
    assert run_dir.name == "decisive_gate.DECISIVE_GATE-p0.5-s0"
    assert run_status(run_dir) == "done"
    indecision = [row["losses/gate_indecision"] for row in read_csv(run_dir / TRAIN_CSV)]
    assert len(indecision) == 16 and all(0.0 < value <= 0.25 for value in indecision)  # the method's own loss ran
    assert read_json(run_dir / SUMMARY)["deployed"] == "diamond"


def test_an_unimportable_method_is_refused_before_any_work(tmp_path, capsys):
    assert sweep(tmp_path / "sweep", "--methods", "no_such_module:THING") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --method no_such_module:THING: cannot import it") and "\n" not in error
    assert not (tmp_path / "sweep").exists()


def test_a_tuned_sweep_may_add_methods_but_not_change_one_s_settings(tmp_path):
    """--preset tuned keeps each method's settings in sweep.json: a later invocation may train more methods."""
    out = tmp_path / "tuned"
    out.mkdir()

    def tuned(**method_settings) -> sweep_module.SweepConfig:
        return sweep_module.SweepConfig(methods=tuple(method_settings), out=str(out), method_settings=method_settings)

    first = tuned(routing={"lr": 0.002})
    sweep_module.write_json(out / "sweep.json", sweep_module.sweep_record(first))
    sweep_module.check_same_settings(tuned(routing={"lr": 0.002}, naive={"lr": 0.001}))
    with pytest.raises(ValueError, match="routing's settings"):
        sweep_module.check_same_settings(tuned(routing={"lr": 0.003}, naive={"lr": 0.001}))
