"""One training run through SB3's RoutedPPO, written in the native trainer's run-directory format.

``train_sb3(cfg, run_dir)`` is what ``scripts/train_policy.py --trainer sb3`` runs. The run directory holds the same
files as a native run (see :mod:`oversight_rl.rundir.files`), so sweeps, plots and :func:`oversight_rl.load_policy` read
it unchanged, with two differences:

- the checkpoint is SB3's own ``checkpoint.zip`` (``RoutedPPO.load(run_dir / "checkpoint.zip")``), not
  ``checkpoint.pt``; ``config.json`` says ``"trainer": "sb3"``;
- ``train.csv`` has one row per update with SB3's logger records (``train/gate_loss``, ``rollout/ep_rew_mean``...)
  after the ``update``, ``env_steps`` and ``wall_s`` columns.

Every method but ``naive_early_stop`` trains, with PPO only
(:meth:`oversight_rl.engine.config.TrainConfig.validate_trainer` says so up front).
Evaluation is the native one (:func:`oversight_rl.engine.evaluate.evaluate`) on fresh batched environments, every
``cfg.eval_every`` environment steps, driven by an SB3 callback.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from oversight_rl.core.methods import Method, architecture, get_method
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.evaluate import eval_scalars, evaluate_variants, make_eval_env
from oversight_rl.engine.plugins import capture_video, check_loggers, close_loggers, logger_names, open_loggers
from oversight_rl.rundir.files import (
    SB3_CHECKPOINT,
    atomic_write_bytes,
    run_config,
    run_summary,
)
from oversight_rl.rundir.writer import RunWriter
from oversight_rl.sb3.routed_ppo import RoutedPPO, loss_keywords
from oversight_rl.sb3.vec_env import make_batched_vec_env


def make_train_env(cfg: TrainConfig) -> VecEnv:
    """``cfg.num_envs`` batched training environments as an SB3 VecEnv with episode statistics."""
    return make_batched_vec_env(cfg.env, cfg.num_envs, **cfg.env_settings())


def make_model(cfg: TrainConfig, method: Method, env: VecEnv, run_dir: Path) -> RoutedPPO:
    """RoutedPPO with the settings of ``cfg`` (same network, rollout, minibatches and loss as the native trainer)."""
    batch = cfg.steps_per_update
    return RoutedPPO(
        "MoePolicy" if method.policy == "moe" else "SingleExpertPolicy",
        env,
        method=cfg.method,
        **loss_keywords(cfg.loss_settings()),
        learning_rate=LinearSchedule(cfg.lr, 0.0, 1.0) if cfg.anneal_lr else cfg.lr,
        n_steps=cfg.num_steps,
        batch_size=batch // cfg.num_minibatches,
        n_epochs=cfg.update_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        max_grad_norm=cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf,
        policy_kwargs={
            "width": cfg.width,
            "depth": cfg.depth,
            **architecture(cfg),
            "optimizer_kwargs": {"eps": cfg.adam_eps},  # SB3's own default for Adam is the default's 1e-5
        },
        tensorboard_log=str(run_dir / "tensorboard") if cfg.tensorboard else None,
        seed=cfg.seed,
        device=cfg.device,
        threads=cfg.threads,
    )


def save_model(model: RoutedPPO, path: Path) -> None:
    """``model.save`` into ``path``, atomically."""
    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def checkpoint_state(run_dir: str | Path) -> dict:
    """An SB3 run's policy weights in the native checkpoint's layout (``policy``, ``best``), for ``load_policy``."""
    _, params, _ = load_from_zip_file(Path(run_dir) / SB3_CHECKPOINT, load_data=False, device="cpu")
    prefix = "module."
    policy = {key[len(prefix) :]: value for key, value in params["policy"].items() if key.startswith(prefix)}
    return {"policy": policy, "best": {"state": None}}


class RunRecorder(BaseCallback):
    """Writes the run directory while SB3 trains: a train.csv row per update, evaluations, checkpoints.

    An update's row is taken at the start of the next rollout (or at the end of training), when its ``train/``
    records are in the logger; its ``rollout/`` records are kept from the end of its rollout, before SB3 dumps them.
    ``wall_s`` counts training time only, as in the native trainer.
    """

    def __init__(self, cfg: TrainConfig, method: Method, run_dir: Path, num_updates: int, progress: bool):
        super().__init__()
        self.cfg, self.method, self.run_dir, self.num_updates = cfg, method, run_dir, num_updates
        self.steps_per_update = cfg.steps_per_update
        self.eval_interval = cfg.eval_interval(method.budget_scales_with_oversight)
        self.eval_env = make_eval_env(cfg.env, cfg.eval_envs, **cfg.env_settings())
        self.progress = progress
        self.train_rows: list[dict] = []
        self.eval_rows: list[dict] = []
        self.updates_recorded, self.wall_s, self.clock = 0, 0.0, 0.0
        self.rollout_records: dict[str, float] = {}
        self.loggers = []  # W&B (--track), logged to as train.csv and eval.csv are written

    def _on_training_start(self) -> None:
        self.bar = tqdm(
            total=self.num_updates * self.steps_per_update,
            unit="step",
            unit_scale=True,
            disable=not self.progress,
            desc=f"{self.cfg.method} (sb3)",
        )
        self.evaluate_all(update=0)
        self.clock = time.perf_counter()

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_rollout_end(self) -> None:
        self.rollout_records = {k: v for k, v in self.logger.name_to_value.items() if k.startswith("rollout/")}

    def _on_rollout_start(self) -> None:
        update = self.num_timesteps // self.steps_per_update
        if update > self.updates_recorded:
            self.record_update(update)

    def _on_training_end(self) -> None:
        self.record_update(self.num_timesteps // self.steps_per_update, final=True)
        self.bar.close()

    def record_update(self, update: int, final: bool = False) -> None:
        """Append the update's train.csv row; evaluate and checkpoint when due."""
        elapsed = time.perf_counter() - self.clock
        self.wall_s += elapsed
        steps = (update - self.updates_recorded) * self.steps_per_update
        records = {k: v for k, v in self.logger.name_to_value.items() if k.startswith("train/")}
        records.update(self.rollout_records)
        if self.model.ep_info_buffer:
            records["rollout/ep_rew_mean"] = float(np.mean([info["r"] for info in self.model.ep_info_buffer]))
        scalars = {**records, "time/env_steps_per_s": steps / max(elapsed, 1e-9)}
        self.train_rows.append({**self.stamp(update), **scalars})
        self.updates_recorded = update
        self.log_scalars(scalars, update)
        if final or update % self.eval_interval == 0:
            self.evaluate_all(update)
            self.save()
            capture_video(self.cfg, self.run_dir, update * self.steps_per_update)
        self.clock = time.perf_counter()

    def stamp(self, update: int) -> dict:
        return {"update": update, "env_steps": update * self.steps_per_update, "wall_s": round(self.wall_s, 3)}

    def evaluate_all(self, update: int) -> None:
        """Evaluate every variant of the policy on the fixed evaluation seed (as the native trainer does)."""
        results = evaluate_variants(self.model.policy.module, self.eval_env, self.cfg.seed, self.cfg.gamma)
        self.eval_rows += [{**self.stamp(update), "policy": variant, **metrics} for variant, metrics in results.items()]
        self.log_scalars(eval_scalars(results), update)
        deployed = results[self.method.deploy]
        self.bar.set_postfix(true_return=f"{deployed['true_return']:.3f}", hacking_gap=f"{deployed['hacking_gap']:.2f}")

    def log_scalars(self, scalars: dict[str, float], update: int) -> None:
        """``scalars`` to the run's loggers, at the environment step of ``update``."""
        for logger in self.loggers:
            logger.log(scalars, update * self.steps_per_update)

    def save(self) -> None:
        save = lambda path: save_model(self.model, path)  # noqa: E731
        RunWriter(self.run_dir).checkpoint(self.train_rows, self.eval_rows, save, SB3_CHECKPOINT)

    def summary(self) -> dict:
        """summary.json: final and best metrics per variant, in the native trainer's format."""
        updates = self.updates_recorded
        summary = run_summary(
            self.cfg, self.method.deploy, self.eval_rows, updates, updates * self.steps_per_update, self.wall_s
        )
        return {**summary, "trainer": "sb3"}


def train_sb3(cfg: TrainConfig, run_dir: Path, progress: bool = True) -> dict:
    """Train ``cfg`` with RoutedPPO into ``run_dir`` (created) and return its summary."""
    cfg = dataclasses.replace(cfg, trainer="sb3")
    cfg.validate()
    check_loggers(cfg)  # a missing extra fails before anything is written
    method = get_method(cfg.method)
    torch.set_num_threads(cfg.threads)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = make_train_env(cfg)
    model = make_model(cfg, method, env, run_dir)
    num_updates = cfg.num_updates(method.budget_scales_with_oversight)
    config = run_config(cfg, num_updates, env.observation_space.shape)
    recorder = RunRecorder(cfg, method, run_dir, num_updates, progress)
    names = [name for name in logger_names(cfg) if name != "tensorboard"]  # SB3 writes TensorBoard itself
    recorder.loggers = open_loggers(cfg, run_dir, config, names)  # first: if one cannot start, nothing is written
    try:
        RunWriter(run_dir).start(config)
        model.learn(num_updates * cfg.steps_per_update, callback=recorder, progress_bar=False)  # the recorder has one
        summary = recorder.summary()
        RunWriter(run_dir).finish(summary)
    except BaseException:
        close_loggers(recorder.loggers, failed=True)
        raise
    close_loggers(recorder.loggers)
    return summary
