"""What a CleanRL user types works: CleanRL's flag names, --capture-video, a run directory named after its
environment; a run checkpoints on a timer as well as at evaluations, and --help wraps its lines evenly."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from cli import load_script
from conftest import tiny_config
from PIL import Image

from oversight_rl.engine.launch import resume, train
from oversight_rl.engine.trainer import Trainer
from oversight_rl.rundir.files import CHECKPOINT, CONFIG, EVAL_CSV, SUMMARY, TRAIN_CSV, read_csv, read_json
from oversight_rl.rundir.status import run_status

train_cli = load_script("train_policy")
sweep_cli = load_script("sweep_oversight")

FAST = "--num-envs 16 --num-steps 8 --eval-envs 16 --width 16 --update-epochs 1 --num-minibatches 1".split()
TIMING = ("wall_s", "time/env_steps_per_s")


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: None if v != v else v for k, v in row.items() if k not in TIMING} for row in rows]


def same_run(a: Path, b: Path) -> None:
    """Runs ``a`` and ``b`` computed the same thing: equal train.csv and eval.csv but for timing, same summary."""
    for name in (TRAIN_CSV, EVAL_CSV):
        assert untimed(read_csv(a / name)) == untimed(read_csv(b / name)), name
    summary_a, summary_b = read_json(a / SUMMARY), read_json(b / SUMMARY)
    for key in ("updates", "env_steps", "deployed", "early_stopping"):
        assert summary_a.get(key) == summary_b.get(key), key


# ----- CleanRL's flag names -----------------------------------------------------------------------------------------

CLEANRL_RUN = [
    *FAST,
    *("--total-timesteps", "1024", "--eval-every", "1024", "--oversight", "0.5", "--no-cuda"),
    *("--env-id", "OversightRL/DiamondGhost-5x5-v0", "--learning-rate=0.002"),
]


@pytest.fixture(scope="module")
def cleanrl_run(tmp_path_factory) -> Path:
    """A tiny run started with CleanRL's flag names."""
    out = tmp_path_factory.mktemp("cleanrl")
    assert train_cli.main([*CLEANRL_RUN, "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


def test_cleanrl_flags_set_the_packages_settings_and_only_those_are_recorded(cleanrl_run):
    config = read_json(cleanrl_run / CONFIG)
    assert (config["total_env_steps"], config["lr"], config["device"]) == (1024, 0.002, "cpu")
    assert config["env"] == "OversightRL/DiamondGhost-5x5-v0"
    assert not {"total_timesteps", "env_id", "learning_rate", "cuda", "no_cuda"} & set(config)


def test_resume_refuses_a_cleanrl_flag_that_changes_the_run(cleanrl_run, capsys):
    assert train_cli.main(["--resume", str(cleanrl_run), "--learning-rate", "0.5"]) == 2
    assert "--lr 0.5 (saved: 0.002)" in capsys.readouterr().err


def test_cleanrl_flags_parse_in_both_scripts():
    assert train_cli.parse(["--cuda"]).device == "cuda"  # parsing only: validation checks the device
    assert train_cli.parse(["--cuda", "--no-cuda"]).device == "cpu"
    args = train_cli.parse(["--total-timesteps=4096", "--env-id", "OversightRL/DiamondGhost-8x8-v0"])
    assert (args.total_env_steps, args.env) == (4096, "OversightRL/DiamondGhost-8x8-v0")
    sweep = sweep_cli.parse(["--total-timesteps", "4096", "--learning-rate", "0.002", "--seeds", "1"])
    assert (sweep.train.total_env_steps, sweep.train.lr) == (4096, 0.002)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a CUDA device")
def test_cuda_without_a_gpu_is_one_line_before_anything_is_written(tmp_path, capsys):
    assert train_cli.main([*FAST, "--cuda", "--out", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --device cuda: this machine has no CUDA device (use --device cpu)"
    )
    assert not (tmp_path / "runs").exists()


# ----- the run directory's name -------------------------------------------------------------------------------------


def test_a_runs_directory_is_named_after_its_environment(cleanrl_run):
    assert cleanrl_run.name.startswith("routing-p0.5-s0-DiamondGhost-5x5-v0-")


# ----- --capture-video ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["routing", "naive_early_stop"])
def test_capture_video_records_the_deployed_policy_and_changes_nothing(tmp_path, method):
    """Evaluations at updates 0, 8 and 16 of 128 steps; the first comes before any checkpoint to record from."""
    cfg = tiny_config(method=method)
    train(cfg, tmp_path / "plain", progress=False)
    train(dataclasses.replace(cfg, capture_video=True), tmp_path / "video", progress=False)
    same_run(tmp_path / "plain", tmp_path / "video")
    videos = sorted((tmp_path / "video" / "videos").iterdir())
    assert [video.name for video in videos] == ["step-0000001024.gif", "step-0000002048.gif"]
    for video in videos:
        with Image.open(video) as gif:
            assert gif.n_frames > 3
    assert not (tmp_path / "plain" / "videos").exists()


# ----- checkpoints on a timer ---------------------------------------------------------------------------------------

ONE_EVALUATION = dict(eval_every=2048)  # 16 updates, evaluated at updates 0 and 16 only


def interrupt_at_update(cfg, run_dir: Path, update: int, monkeypatch) -> None:
    """Train ``cfg`` into ``run_dir`` and stop it (as Ctrl-C would) once it has made ``update`` updates."""
    original = Trainer.train_step

    def interrupted(self):
        if self.agents[0].update >= update:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir, progress=False)
    monkeypatch.undo()


@pytest.mark.parametrize(("every_s", "checkpointed"), [(1e-6, True), (3600.0, False), (0.0, False)])
def test_a_run_checkpoints_on_a_timer_between_evaluations(tmp_path, monkeypatch, every_s, checkpointed):
    """Stopped after 5 updates, before its first checkpointed evaluation (update 16): only a timer has saved it."""
    cfg = tiny_config(**ONE_EVALUATION, checkpoint_every_s=every_s)
    interrupt_at_update(cfg, tmp_path, 5, monkeypatch)
    assert (tmp_path / CHECKPOINT).exists() == checkpointed
    if checkpointed:
        assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["counters"][0] == 5
        assert run_status(tmp_path) == "interrupted"


def test_resuming_from_a_timed_checkpoint_reproduces_the_uninterrupted_run(tmp_path, monkeypatch):
    """The run stops between evaluations, with train.csv at update 5 and eval.csv at update 0; resumed (from a
    directory named as runs were before the environment joined the name), it ends where the uninterrupted run does,
    each row once."""
    cfg = tiny_config(**ONE_EVALUATION)
    train(cfg, tmp_path / "whole", progress=False)
    stopped = tmp_path / "routing-p0.5-s0-20260101-000000"
    interrupt_at_update(dataclasses.replace(cfg, checkpoint_every_s=1e-6), stopped, 5, monkeypatch)
    assert [row["update"] for row in read_csv(stopped / TRAIN_CSV)] == [1, 2, 3, 4, 5]
    assert {row["update"] for row in read_csv(stopped / EVAL_CSV)} == {0}

    resume(stopped, progress=False)
    same_run(tmp_path / "whole", stopped)
    assert [row["update"] for row in read_csv(stopped / TRAIN_CSV)] == list(range(1, 17))
    assert run_status(stopped) == "done"


def test_resuming_through_the_script_continues_an_old_named_run(tmp_path, monkeypatch, capsys):
    stopped = tmp_path / "routing-p0.5-s0-20260101-000000"
    interrupt_at_update(tiny_config(checkpoint_every_s=1e-6), stopped, 3, monkeypatch)
    assert train_cli.main(["--resume", str(stopped)]) == 0
    assert run_status(stopped) == "done"


# ----- --help -------------------------------------------------------------------------------------------------------


def options_help(text: str) -> tuple[list[list[str]], int]:
    """The help lines of each option in tyro's --help (boxed, or plain where the output cannot show the box), and
    the width they may fill."""
    blocks, column, content = [], None, ""
    for line in text.splitlines():
        content = line.replace("│", " ")[2:-2]
        if content.startswith("-"):
            blocks.append([])
            if column is None and "  " in content:
                column = len(content) - len(content.split("  ", 1)[1].lstrip())
        if blocks and column is not None:
            head, help_text = content[:column], content[column:].rstrip()
            if help_text and (not head.strip() or head.endswith("  ")):
                blocks[-1].append(help_text)
    return blocks, len(content) - (column or 0)


@pytest.mark.parametrize("script", [train_cli, sweep_cli])
def test_help_wraps_each_setting_evenly_and_names_cleanrls_flags(script, monkeypatch, capsys):
    """A help line ends early only where the next word would not fit (it once ended at every line break of the
    setting's docstring, then wrapped again)."""
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit):
        script.parse(["--help"])
    text = capsys.readouterr().out
    blocks, width = options_help(text)
    assert len(blocks) > 40
    for lines in blocks:
        for line, after in zip(lines, lines[1:], strict=False):
            assert len(line) + 1 + len(after.split()[0]) > width, (line, after)
    flat = " ".join(text.replace("│", " ").split())
    assert "CleanRL's --total-timesteps is --total-env-steps." in flat
    assert "CleanRL's --cuda is --device cuda, --no-cuda is --device cpu." in flat
