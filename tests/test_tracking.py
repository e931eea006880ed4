"""Weights & Biases tracking (--track), offline: a tracked run is a W&B run named after its run directory, holding its
settings and the scalars of train.csv and eval.csv, finished when the run ends (as failed when it raises); without
wandb installed, --track is a one-line error; the tracking flags are runtime settings that a resume may change."""

from __future__ import annotations

import dataclasses
import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from oversight_rl.engine.config import RUNTIME_SETTINGS, TrainConfig
from oversight_rl.engine.launch import resume, saved_config, train, train_population, with_runtime_settings
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CONFIG, read_json, write_json

FLAGS = ["--total-env-steps", "2048", "--num-envs", "16", "--num-steps", "8", "--eval-envs", "16", "--width", "16"]
FLAGS += ["--eval-every", "1024", "--oversight", "0.5"]  # evaluations at 0, 1024 and 2048 env steps


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch) -> Iterator[Path]:
    """W&B offline (no network, no account), keeping its files under the returned directory; tests that use it skip
    without wandb (the others check what --track does without it)."""
    wandb = pytest.importorskip("wandb")
    wandb_dir = tmp_path / "wandb-files"
    wandb_dir.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(wandb_dir))
    monkeypatch.setenv("WANDB_SILENT", "true")
    wandb.teardown()  # W&B reads its settings once per process: make it read these
    yield wandb_dir
    wandb.teardown()


def wandb_records(path: Path):
    """The records of a W&B transaction log (``run-<id>.wandb``): a 7-byte header, then LevelDB-log-style records in
    32 KiB blocks (checksum, length, type; FIRST/MIDDLE/LAST parts of a record longer than a block's rest)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    ident, magic, _ = struct.unpack("<4sHB", data[:7])
    assert (ident, magic) == (b":W&B", 0xBEE1), f"{path} is not a W&B transaction log"
    block, pos, parts = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's last bytes are padding when no header fits
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero-filled rest of a block
            pos += block - pos % block
            continue
        parts += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            parts = b""
            yield record


@dataclasses.dataclass
class OfflineRun:
    name: str
    project: str
    config: dict
    history: list[dict]  # one dict per logged step, with "_step"
    exit_code: int | None


def key(item) -> str:
    """A logged item's name (W&B writes it as ``key`` or as the parts of ``nested_key``)."""
    return item.key or ".".join(item.nested_key)


def offline_runs(wandb_dir: Path) -> dict[str, OfflineRun]:
    """Every offline W&B run under ``wandb_dir``, by name."""
    import wandb

    wandb.teardown()  # its service writes the runs' files in the background: wait until it has written them
    runs = {}
    for path in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")):
        run = OfflineRun("", "", {}, [], None)
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run.name, run.project = record.run.display_name, record.run.project
                run.config.update({key(item): json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "history":
                run.history.append({key(item): json.loads(item.value_json) for item in record.history.item})
            elif kind == "exit":
                run.exit_code = record.exit.exit_code
        runs[run.name] = run
    return runs


def logged_keys(run: OfflineRun) -> set[str]:
    return {key for row in run.history for key in row if not key.startswith("_")}


def steps_with(run: OfflineRun, key: str) -> list[int]:
    return [row["_step"] for row in run.history if key in row]


def test_track_logs_the_runs_settings_and_scalars_to_an_offline_wandb_run(offline_wandb, tmp_path):
    from cli import load_script

    out = tmp_path / "runs"
    assert load_script("train_policy").main([*FLAGS, "--track", "--exp-name", "wb", "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    (run,) = offline_runs(offline_wandb).values()
    assert run.name == run_dir.name and run.name.startswith("wb-routing-p0.5-s0-")  # with --exp-name
    assert run.project == "oversight-rl"
    saved = read_json(run_dir / CONFIG)
    assert {key: run.config[key] for key in saved} == saved  # config.json's settings, as the W&B run's config
    train_keys = {"losses/policy", "losses/gate", "losses/approx_kl", "charts/learning_rate", "time/env_steps_per_s"}
    eval_keys = {"eval/diamond/true_return", "eval/trained/gate_auroc", "eval/ghost/hacking_gap"}
    assert train_keys | eval_keys <= logged_keys(run)
    assert steps_with(run, "eval/diamond/true_return") == [0, 1024, 2048]  # at their environment step, as TensorBoard
    assert steps_with(run, "losses/policy") == list(range(128, 2049, 128))
    assert run.exit_code == 0


def test_every_run_of_a_population_is_a_wandb_run_of_its_own(offline_wandb, tiny_cfg, tmp_path):
    cfgs = [tiny_cfg(seed=seed, track=True, wandb_project_name="pop") for seed in (0, 1)]
    train_population(cfgs, [tmp_path / "a", tmp_path / "b"], progress=False)
    runs = offline_runs(offline_wandb)
    assert set(runs) == {"a", "b"}
    assert [runs[name].config["seed"] for name in "ab"] == [0, 1]
    assert all(run.project == "pop" and run.exit_code == 0 for run in runs.values())
    assert all("eval/trained/true_return" in logged_keys(run) for run in runs.values())


def test_sb3_trainer_tracks_its_scalars(offline_wandb, tiny_cfg, tmp_path):
    train(tiny_cfg(trainer="sb3", track=True), tmp_path / "sb3", progress=False)
    (run,) = offline_runs(offline_wandb).values()
    assert {"train/policy_gradient_loss", "train/gate_loss", "eval/diamond/true_return"} <= logged_keys(run)
    assert steps_with(run, "eval/diamond/true_return") == [0, 1024, 2048]
    assert run.config["trainer"] == "sb3" and run.exit_code == 0


def test_a_run_that_raises_finishes_its_wandb_run_as_failed(offline_wandb, tiny_cfg, tmp_path, monkeypatch):
    original = Trainer.train_step

    def failing(self):
        if self.agents[0].update == 3:
            raise RuntimeError("boom")
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", failing)
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny_cfg(track=True), tmp_path / "run", progress=False)
    (run,) = offline_runs(offline_wandb).values()
    assert run.exit_code == 1
    assert steps_with(run, "losses/policy") == [128, 256, 384]


@pytest.mark.parametrize("trainer", ["native", "sb3"])
def test_track_without_wandb_installed_is_a_one_line_error(tmp_path, monkeypatch, capsys, trainer):
    from cli import load_script

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    argv = [*FLAGS, "--track", "--trainer", trainer, "--out", str(tmp_path)]
    assert load_script("train_policy").main(argv) == 2
    assert capsys.readouterr().err.strip() == "error: --track needs the wandb extra: pip install -e '.[wandb]'"
    assert not list(tmp_path.glob(f"*/{CONFIG}"))  # it stops before the run writes anything


@pytest.mark.parametrize("trainer", ["native", "sb3"])
def test_a_wandb_run_that_cannot_start_is_a_one_line_error_and_leaves_no_run_directory(
    offline_wandb, tmp_path, monkeypatch, capsys, trainer
):
    import wandb
    from cli import load_script

    def no_account(**settings):
        raise wandb.errors.UsageError("No API key configured")

    monkeypatch.setattr(wandb, "init", no_account)
    out = tmp_path / "runs"
    assert load_script("train_policy").main([*FLAGS, "--track", "--trainer", trainer, "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --track: Weights & Biases could not start the run (UsageError: No API key")
    assert "\n" not in error and list(out.iterdir()) == []


def test_tracking_flags_are_runtime_settings_a_resume_may_change(tmp_path):
    assert {"track", "wandb_project_name", "wandb_entity"} <= set(RUNTIME_SETTINGS)
    flags = {"track": True, "wandb_project_name": "other", "wandb_entity": "team"}
    cfg = with_runtime_settings(TrainConfig(), tmp_path, flags)
    assert (cfg.track, cfg.wandb_project_name, cfg.wandb_entity) == (True, "other", "team")


def test_a_run_from_before_the_tracking_flags_resumes_with_their_defaults(tiny_cfg, tmp_path, offline_wandb):
    cfg = tiny_cfg(total_env_steps=256, eval_every=128)
    train(cfg, tmp_path, progress=False)
    config = read_json(tmp_path / CONFIG)
    write_json(tmp_path / CONFIG, {k: v for k, v in config.items() if k not in ("track", "wandb_project_name")})
    assert saved_config(tmp_path).track is False
    resume(tmp_path, progress=False, track=True)  # finished already: it only writes its summary again
    (run,) = offline_runs(offline_wandb).values()
    assert run.name == tmp_path.name and run.exit_code == 0
