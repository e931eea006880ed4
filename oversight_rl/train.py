"""One training run: collect, build the method's batch, update, evaluate, checkpoint; resumable."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import envs
from oversight_rl.config import TrainConfig
from oversight_rl.evaluate import VALIDATION_SEED_OFFSET, evaluate, evaluate_variants, make_eval_env
from oversight_rl.labels import UNFINISHED, Route, episode_routes, filtering_mask, verified_mask
from oversight_rl.losses import LOSSES, Batch, LossCoefs
from oversight_rl.methods import Method, get_method
from oversight_rl.policies import ActorCritic, make_policy
from oversight_rl.rollout import Rollout, collect, discounted_returns, gae, training_rewards
from oversight_rl.rundir import (
    CHECKPOINT,
    CONFIG,
    EVAL_CSV,
    SUMMARY,
    TRAIN_CSV,
    read_json,
    run_config,
    run_summary,
    save_torch,
    write_csv,
    write_json,
)


def build_policy(cfg: TrainConfig, method: Method, obs_shape: tuple[int, ...]) -> ActorCritic:
    return make_policy(method.policy, int(np.prod(obs_shape)), cfg.width, cfg.depth, method.constant_gate)


def build_batch(rollout: Rollout, method: Method, cfg: TrainConfig) -> Batch:
    """Turn a rollout into flat samples: the method's rewards, advantages, sample weights, routes and labels."""
    rewards = training_rewards(rollout, method.reward)
    if cfg.algo == "ppo":
        advantages, returns = gae(rewards, rollout.values, rollout.dones, rollout.next_value, cfg.gamma, cfg.gae_lambda)
    else:
        returns = discounted_returns(rewards, rollout.dones, cfg.gamma)
        advantages = returns - rollout.values
    outcome, labeled = rollout.outcome, rollout.episode_labeled
    labels = episode_routes(outcome, labeled)
    weights = torch.ones_like(rewards)
    if method.verified_only:
        weights = filtering_mask(verified_mask(outcome, labeled), outcome == UNFINISHED, cfg.filtering).float()
    routes = labels if method.route else torch.full_like(labels, Route.BOTH)
    flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
    return Batch(
        obs=flat(rollout.obs),
        actions=flat(rollout.actions),
        old_logp=flat(rollout.logp),
        advantages=flat(advantages),
        returns=flat(returns),
        weights=flat(weights),
        routes=flat(routes),
        labels=flat(labels),
        trunk=rollout.trunk,
    )


def loss_coefs(cfg: TrainConfig, method: Method) -> LossCoefs:
    return LossCoefs(
        clip=cfg.clip_coef if cfg.algo == "ppo" else None,
        ent=cfg.ent_coef,
        vf=cfg.vf_coef,
        gate=cfg.gate_coef if method.gate_loss else 0.0,
        normalize_advantages=cfg.normalize_advantages,
        mean_over_used=cfg.filtering != "paper",
    )


def open_tensorboard(run_dir: Path):
    """A TensorBoard writer logging into ``run_dir/tensorboard``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ValueError(
            "--tensorboard needs the tensorboard extra: pip install 'oversight-rl[tensorboard]'"
        ) from error
    return SummaryWriter(str(Path(run_dir) / "tensorboard"))


class Trainer:
    """Owns one run's policy, optimizer, environments and files. ``run()`` trains to the budget."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, progress: bool = True):
        cfg.validate()
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.method = get_method(cfg.method)
        self.loss_fn = LOSSES[self.method.loss]
        self.coefs = loss_coefs(cfg, self.method)
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.env = envs.make_batched(cfg.env, cfg.num_envs, oversight=cfg.oversight)
        if progress:
            print(envs.describe_vectorization(cfg.env, cfg.num_envs, oversight=cfg.oversight))
        self.eval_env = make_eval_env(cfg.env, cfg.eval_envs, cfg.oversight)
        self.policy = build_policy(cfg, self.method, self.env.single_observation_space.shape).to(cfg.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, eps=1e-5)
        self.num_updates = cfg.num_updates(self.method.budget_scales_with_oversight)
        self.eval_interval = cfg.eval_interval(self.method.budget_scales_with_oversight)
        self.update, self.env_steps, self.wall_s = 0, 0, 0.0
        self.train_rows: list[dict] = []
        self.eval_rows: list[dict] = []
        self.best = {"signal": -math.inf, "update": None, "state": None, "row": None, "evals_since": 0}
        self.obs, _ = self.env.reset(seed=cfg.seed)
        self.writer = open_tensorboard(self.run_dir) if cfg.tensorboard else None

    # ----- state on disk -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = run_config(
            self.cfg,
            self.num_updates,
            self.env.single_observation_space.shape,
            vectorization=envs.vectorization_of(self.cfg.env, oversight=self.cfg.oversight),
        )
        write_json(self.run_dir / CONFIG, config)

    def save(self) -> None:
        write_csv(self.run_dir / TRAIN_CSV, self.train_rows)
        write_csv(self.run_dir / EVAL_CSV, self.eval_rows)
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "counters": (self.update, self.env_steps, self.wall_s),
            "rows": (self.train_rows, self.eval_rows),
            "best": self.best,
            "torch_rng": torch.get_rng_state(),
            "env": (envs.vector_state(self.env), self.obs),
        }
        save_torch(self.run_dir / CHECKPOINT, state)

    def load(self) -> None:
        state = torch.load(self.run_dir / CHECKPOINT, weights_only=False)
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.update, self.env_steps, self.wall_s = state["counters"]
        self.train_rows, self.eval_rows = state["rows"]
        self.best = state["best"]
        torch.set_rng_state(state["torch_rng"])
        env_state, self.obs = state["env"]
        envs.restore_vector_state(self.env, env_state)

    # ----- training ----------------------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        if cfg.anneal_lr:
            self.optimizer.param_groups[0]["lr"] = cfg.lr * (1.0 - self.update / self.num_updates)
        rollout, self.obs = collect(
            self.env,
            self.policy,
            self.obs,
            cfg.num_steps,
            keep_graph=cfg.algo == "reinforce" and cfg.reuse_rollout_pass,
            device=cfg.device,
        )
        batch = build_batch(rollout, self.method, cfg)
        metrics = self._optimize(batch)
        self.update += 1
        self.env_steps += cfg.steps_per_update
        dones = rollout.dones
        metrics.update(
            {
                "rollout/episodes": float(dones.sum()),
                "rollout/labeled_fraction": float(rollout.labeled[dones].float().mean()) if dones.any() else math.nan,
                "charts/learning_rate": self.optimizer.param_groups[0]["lr"],
            }
        )
        return metrics

    def _optimize(self, batch: Batch) -> dict[str, float]:
        cfg = self.cfg
        if cfg.algo == "reinforce":  # one step on the whole window
            return self._step(batch)
        size = batch.actions.shape[0]
        minibatch = size // cfg.num_minibatches
        metrics: dict[str, float] = {}
        for _ in range(cfg.update_epochs):
            order = torch.randperm(size)
            for start in range(0, minibatch * cfg.num_minibatches, minibatch):
                index = order[start : start + minibatch]
                metrics = self._step(Batch(*(field[index] for field in batch[:-1]), trunk=None))
        return metrics

    def _step(self, batch: Batch) -> dict[str, float]:
        loss, metrics = self.loss_fn(batch, self.policy, self.coefs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        return metrics

    # ----- evaluation --------------------------------------------------------------------------------------------

    def evaluate_all(self) -> dict[str, dict[str, float]]:
        """Evaluate every variant on the fixed evaluation seed; track the best checkpoint for early stopping."""
        results = evaluate_variants(self.policy, self.eval_env, self.cfg.seed, self.cfg.gamma)
        if self.method.early_stopping:
            results["best"] = self._track_best(results["trained"])
        stamp = {"update": self.update, "env_steps": self.env_steps, "wall_s": round(self.wall_s, 3)}
        self.eval_rows += [{**stamp, "policy": variant, **metrics} for variant, metrics in results.items()]
        for variant, metrics in results.items():
            self._log_scalars({f"eval/{variant}/{key}": value for key, value in metrics.items()})
        return results

    def _track_best(self, trained_metrics: dict[str, float]) -> dict[str, float]:
        """Score the trained policy on validation episodes; remember it if the signal improved."""
        key = "true_return" if self.cfg.early_stop_signal == "oracle" else "verified_return"
        seed = self.cfg.seed + VALIDATION_SEED_OFFSET
        signal = evaluate(self.policy, self.eval_env, seed, self.cfg.gamma)[key]
        best = self.best
        if not math.isnan(signal) and signal > best["signal"]:
            best.update(
                signal=signal,
                update=self.update,
                state=copy.deepcopy(self.policy.state_dict()),
                row=dict(trained_metrics),
                evals_since=0,
            )
        else:
            best["evals_since"] += 1
        return best["row"] if best["row"] is not None else dict(trained_metrics)

    def should_stop_early(self) -> bool:
        patience = self.cfg.early_stop_patience
        return self.method.early_stopping and patience > 0 and self.best["evals_since"] >= patience

    # ----- the loop ----------------------------------------------------------------------------------------------

    def run(self) -> dict:
        bar = tqdm(
            total=self.num_updates * self.cfg.steps_per_update,
            initial=self.env_steps,
            unit="step",
            unit_scale=True,
            disable=not self.progress,
            desc=self.cfg.method,
        )
        stopped_early = False
        if self.update == 0 and not self.eval_rows:
            self._report(bar, self.evaluate_all())
        while self.update < self.num_updates and not stopped_early:
            tick = time.perf_counter()
            metrics = self.train_step()
            elapsed = time.perf_counter() - tick
            self.wall_s += elapsed
            steps = self.cfg.steps_per_update
            metrics["time/env_steps_per_s"] = steps / max(elapsed, 1e-9)
            self.train_rows.append(
                {"update": self.update, "env_steps": self.env_steps, "wall_s": round(self.wall_s, 3), **metrics}
            )
            self._log_scalars(metrics)
            bar.update(steps)
            if self.update % self.eval_interval == 0 or self.update == self.num_updates:
                self._report(bar, self.evaluate_all())
                stopped_early = self.should_stop_early()
                self.save()
        bar.close()
        if self.writer is not None:
            self.writer.close()
        summary = self.summary(stopped_early)
        write_json(self.run_dir / SUMMARY, summary)
        return summary

    def _log_scalars(self, metrics: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, self.env_steps)

    def _report(self, bar, results: dict[str, dict[str, float]]) -> None:
        deployed = results[self.method.deploy]
        bar.set_postfix(true_return=f"{deployed['true_return']:.3f}", hacking_gap=f"{deployed['hacking_gap']:.2f}")

    def summary(self, stopped_early: bool) -> dict:
        summary = run_summary(self.cfg, self.method.deploy, self.eval_rows, self.update, self.env_steps, self.wall_s)
        if self.method.early_stopping:
            summary["early_stopping"] = {
                "signal": self.cfg.early_stop_signal,
                "best_update": self.best["update"],
                "best_signal": self.best["signal"],
                "stopped_early": stopped_early,
            }
        return summary


def train(cfg: TrainConfig, run_dir: Path, progress: bool = True) -> dict:
    """Train ``cfg`` into ``run_dir`` (created) with the trainer it names, and return its summary."""
    if cfg.trainer == "sb3":
        from oversight_rl.sb3.train import train_sb3  # only the adapter imports stable_baselines3

        return train_sb3(cfg, run_dir, progress)
    trainer = Trainer(cfg, run_dir, progress)
    trainer.start()
    return trainer.run()


def resume(run_dir: Path, progress: bool = True) -> dict:
    """Continue an interrupted run from its last checkpoint, with the settings it was started with."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG).exists() and read_json(run_dir / CONFIG).get("trainer") == "sb3":
        raise ValueError(f"--resume: {run_dir} was trained with --trainer sb3, which cannot resume; start a new run")
    if not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"--resume: {run_dir} has no {CHECKPOINT} to resume from")
    saved = read_json(run_dir / CONFIG)
    trainer = Trainer(TrainConfig.from_saved(saved), run_dir, progress)
    trainer.load()
    return trainer.run()
