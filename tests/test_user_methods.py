"""A method of the user's own, named by its import path: its own training reward, and every part of it checked
before anything is written."""

from __future__ import annotations

import sys
import textwrap

import pytest
from cli import load_script

from oversight_rl.core.methods import get_method
from oversight_rl.engine.launch import train
from oversight_rl.rundir.files import TRAIN_CSV, read_csv

MODULE = "user_methods_under_test"
SOURCE = textwrap.dedent(
    '''
    from envs import Terminal
    from oversight_rl.core.methods import Method


    def diamond_bonus(terminal, ghost_overseen):
        """3 for the Diamond and nothing else: a reward no built-in method gives."""
        return (terminal == Terminal.DIAMOND) * 3.0


    def no_arguments():
        return 0.0


    OWN_REWARD = Method("single", diamond_bonus, "pg")
    REWARD_BY_PATH = Method("single", "user_methods_under_test:diamond_bonus", "pg")
    BUILT_IN_REWARD = Method("single", "true", "pg")
    UNKNOWN_REWARD = Method("single", "bogus", "pg")
    MISSING_REWARD = Method("single", "user_methods_under_test:nothing_here", "pg")
    UNIMPORTABLE_REWARD = Method("single", "no_such_module_here:reward", "pg")
    WRONG_SIGNATURE = Method("single", no_arguments, "pg")
    NOT_A_LOSS = Method("single", "true", 3)
    MISSING_LOSS = Method("single", "true", "user_methods_under_test:nothing_here")
    WRONG_DEPLOY = Method("single", "true", "pg", deploy="diamond")
    WRONG_POLICY = Method("mixture", "true", "pg")
    '''
)
INVALID = [
    "UNKNOWN_REWARD",
    "MISSING_REWARD",
    "UNIMPORTABLE_REWARD",
    "WRONG_SIGNATURE",
    "NOT_A_LOSS",
    "MISSING_LOSS",
    "WRONG_DEPLOY",
    "WRONG_POLICY",
    "NOT_DEFINED",
]
FAST = "--num-envs 16 --num-steps 8 --eval-envs 16 --width 16 --update-epochs 1 --num-minibatches 1".split()
TINY = [*FAST, "--total-env-steps", "2048", "--eval-every", "1024", "--oversight", "0.5"]
STEPS_PER_UPDATE = 16 * 8


@pytest.fixture(scope="module", autouse=True)
def user_module(tmp_path_factory):
    """The user's module, importable by its name as PYTHONPATH would make it."""
    folder = tmp_path_factory.mktemp("user")
    (folder / f"{MODULE}.py").write_text(SOURCE)
    sys.path.insert(0, str(folder))
    yield
    sys.path.remove(str(folder))
    sys.modules.pop(MODULE, None)


def train_rows(tiny_cfg, tmp_path, name: str) -> list[dict]:
    run_dir = tmp_path / name
    train(tiny_cfg(method=f"{MODULE}:{name}", algo="reinforce"), run_dir, progress=False)
    return read_csv(run_dir / TRAIN_CSV)


def untimed(rows: list[dict]) -> list[dict]:
    """Rows without their timing columns, NaN (an empty cell: no labels in a window) as None so rows compare."""
    timing = ("wall_s", "time/env_steps_per_s")
    return [{k: None if v != v else v for k, v in row.items() if k not in timing} for row in rows]


def test_a_method_trains_on_its_own_reward(tiny_cfg, tmp_path):
    rows = train_rows(tiny_cfg, tmp_path, "OWN_REWARD")
    paid = [float(row["rollout/training_reward"]) * STEPS_PER_UPDATE / 3.0 for row in rows]  # Diamonds reached
    episodes = [float(row["rollout/episodes"]) for row in rows]
    assert all(abs(n - round(n)) < 1e-6 and 0 <= round(n) <= e for n, e in zip(paid, episodes, strict=True))
    assert sum(paid) > 0
    built_in = train_rows(tiny_cfg, tmp_path, "BUILT_IN_REWARD")  # the same run on the true reward: other numbers
    assert [r["losses/policy"] for r in rows] != [r["losses/policy"] for r in built_in]


def test_a_reward_named_by_import_path_is_the_same_reward(tiny_cfg, tmp_path):
    own, by_path = (train_rows(tiny_cfg, tmp_path, name) for name in ("OWN_REWARD", "REWARD_BY_PATH"))
    assert untimed(own) == untimed(by_path)
    assert get_method(f"{MODULE}:REWARD_BY_PATH").reward_fn is get_method(f"{MODULE}:OWN_REWARD").reward


@pytest.mark.parametrize("name", INVALID)
@pytest.mark.parametrize("script", ["train_policy", "sweep_oversight"])
def test_an_invalid_method_is_one_error_line_and_writes_nothing(tmp_path, capsys, script, name):
    out = tmp_path / "out"
    argv = [*TINY, "--out", str(out)]
    argv += ["--method" if script == "train_policy" else "--methods", f"{MODULE}:{name}"]
    assert load_script(script).main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{MODULE}:{name}" in lines[0], err
    assert not out.exists()
