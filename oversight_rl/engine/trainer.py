"""Training runs as one population: collect, build each agent's batch, update, evaluate, checkpoint; resumable.

``S`` agents of one method share every setting but their seed and oversight level, and train in lock-step with
their parameters stacked (:mod:`oversight_rl.engine.population`). Each agent keeps everything of its own: environments,
random streams (counter-based, keyed by its seed), optimizer state, gradient-norm clip, advantage normalization,
learning-rate schedule, budget, evaluation, early stopping and run directory, so agent ``k`` computes what it would
alone. A single run is a population of one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import envs
from envs.counter_rng import stream_keys, uniform
from oversight_rl.core.labels import UNFINISHED, Route, episode_routes, filtering_mask, verified_mask
from oversight_rl.core.losses import Batch, loss_coefs
from oversight_rl.core.methods import Method, build_policy, get_method
from oversight_rl.core.policies import ActorCritic
from oversight_rl.core.returns import discounted_returns, gae
from oversight_rl.engine.agent_envs import NumpyAgentEnvs, TorchAgentEnvs, make_agent_envs
from oversight_rl.engine.collect import (
    Rollout,
    collect,
    label_noise_keys,
    labels_read,
    training_rewards,
    truncated,
    with_label_noise,
    wrong_labels,
)
from oversight_rl.engine.config import TrainConfig
from oversight_rl.engine.evaluate import (
    EVAL_SEED_OFFSET,
    VALIDATION_SEED_OFFSET,
    eval_scalars,
    evaluation_keys,
    make_eval_env,
    play_window,
    reported,
    summarize,
    variant_step,
    verified_return,
)
from oversight_rl.engine.plugins import Logger, capture_video, check_loggers, close_loggers, open_loggers
from oversight_rl.engine.population import AgentAdam, Population, clip_grad_norms
from oversight_rl.rundir.files import (
    CHECKPOINT,
    load_torch,
    run_config,
    run_summary,
    save_torch,
)
from oversight_rl.rundir.writer import RunWriter

ACTION_STREAM, MINIBATCH_STREAM = 1, 2  # purposes of an agent's counter-based random streams
PER_AGENT = ("seed", "oversight")
"""The settings that may differ between the agents of one population."""


def per_agent(x: torch.Tensor) -> torch.Tensor:
    """``(T, S, N, ...)`` to each agent's time-major samples ``(S, T*N, ...)``."""
    return x.transpose(0, 1).reshape(x.shape[1], -1, *x.shape[3:])


def build_batch(rollout: Rollout, method: Method, cfg: TrainConfig, steps: torch.Tensor | None = None) -> Batch:
    """Each agent's samples: the method's rewards, advantages, sample weights, routes and labels, ``(S, T*N)``.

    ``steps[k]`` shortens agent ``k``'s window to its first steps (the last window of its budget); None keeps all.
    """
    valid = window_ends = None
    if steps is not None:
        rollout, kept, window_ends = truncated(rollout, steps)
        valid = kept.expand_as(rollout.dones).to(rollout.values.dtype)
    rewards = training_rewards(rollout, method.reward_fn).to(rollout.values.dtype)
    mc_returns = None
    if cfg.algo == "ppo":
        advantages, returns = gae(
            rewards, rollout.values, rollout.dones, rollout.next_value, cfg.gamma, cfg.gae_lambda, window_ends
        )
        if method.policy == "moe" and cfg.routed_advantage != "shared_baseline":
            # the mixture's routed loss reads returns without a baseline: lambda 1, bootstrapped at the window's end
            _, mc_returns = gae(rewards, rollout.values, rollout.dones, rollout.next_value, cfg.gamma, 1.0, window_ends)
    else:
        returns = discounted_returns(rewards, rollout.dones, cfg.gamma, window_ends)
        advantages = returns - rollout.values
        mc_returns = returns
    outcome, labeled = rollout.outcome, rollout.episode_labeled
    labels = episode_routes(outcome, labeled)
    weights = torch.ones_like(rewards)
    if method.verified_only:
        weights = filtering_mask(verified_mask(outcome, labeled), outcome == UNFINISHED, cfg.filtering).to(rewards)
    routes = labels if method.route else torch.full_like(labels, Route.BOTH)
    return Batch(
        obs=per_agent(rollout.obs),
        actions=per_agent(rollout.actions),
        old_logp=per_agent(rollout.logp),
        advantages=per_agent(advantages),
        returns=per_agent(returns),
        weights=per_agent(weights),
        routes=per_agent(routes),
        labels=per_agent(labels),
        mc_returns=None if mc_returns is None else per_agent(mc_returns),
        watched=None if rollout.watched is None else per_agent(rollout.watched),
        valid=None if valid is None else per_agent(valid),
        trunk=rollout.trunk,
    )


def env_backend(cfg: TrainConfig) -> str:
    """The environment implementation a run uses: ``cfg.env_backend``, with ``auto`` resolved to the on-device
    torch environment on an accelerator (where the preset has a native form) and numpy on the CPU."""
    if cfg.env_backend != "auto":
        return cfg.env_backend
    on_accelerator = torch.device(cfg.device).type != "cpu"
    return "torch" if on_accelerator and envs.vectorization_of(cfg.env, **cfg.env_settings()) == "native" else "numpy"


def population_key(cfg: TrainConfig) -> tuple:
    """Runs with equal keys can train in one population: every setting but seed and oversight is shared."""
    return tuple((f.name, getattr(cfg, f.name)) for f in dataclasses.fields(cfg) if f.name not in PER_AGENT)


class Diverged(ValueError):
    """A run whose parameters became non-finite."""


@dataclass
class Agent:
    """One run's bookkeeping inside a population: its settings, directory, budget, counters, rows and best."""

    cfg: TrainConfig
    run_dir: Path
    scales: bool  # the method's budget scales with oversight (the oracle)
    num_updates: int
    eval_interval: int
    update: int = 0
    env_steps: int = 0
    wall_s: float = 0.0
    train_rows: list[dict] = field(default_factory=list)
    eval_rows: list[dict] = field(default_factory=list)
    best: dict = field(
        default_factory=lambda: {"signal": -math.inf, "update": None, "state": None, "row": None, "evals_since": 0}
    )
    loggers: list[Logger] | None = None  # --tensorboard and --track, open while the agent trains

    @property
    def stopped_early(self) -> bool:
        """Early stopping's patience ran out (its counter of evaluations without improvement is saved in ``best``)."""
        patience = self.cfg.early_stop_patience
        return patience > 0 and self.best["evals_since"] >= patience

    @property
    def window_steps(self) -> int:
        """Steps per environment of the next update: a whole window, but a shorter one where the budget ends."""
        return self.cfg.window_steps(self.update, self.scales) if self.active else self.cfg.num_steps

    @property
    def active(self) -> bool:
        """Still training: budget left and not stopped early."""
        return self.update < self.num_updates and not self.stopped_early

    def stamp(self) -> dict:
        return {"update": self.update, "env_steps": self.env_steps, "wall_s": round(self.wall_s, 3)}

    def log_scalars(self, metrics: dict[str, float]) -> None:
        """``metrics`` to the run's loggers, at the agent's environment step."""
        for logger in self.loggers or ():
            logger.log(metrics, self.env_steps)

    def close_logs(self, failed: bool = False) -> None:
        """Close the run's loggers (a W&B run finishes as failed if training raised)."""
        close_loggers(self.loggers or (), failed)
        self.loggers = None


class Trainer:
    """Trains the runs ``cfgs`` (one population: same settings but seed and oversight) into ``run_dirs``.

    ``start(k)`` writes agent ``k``'s config.json for a fresh run; ``load(k)`` restores it from its checkpoint
    instead. ``run()`` trains every agent to its budget and returns their summaries.
    """

    def __init__(self, cfgs: list[TrainConfig], run_dirs: list[Path], progress: bool = True):
        if not cfgs or len(cfgs) != len(run_dirs):
            raise ValueError(f"a population needs one run directory per run, got {len(cfgs)} runs, {len(run_dirs)}")
        for cfg in cfgs:
            cfg.validate()
        if len({population_key(cfg) for cfg in cfgs}) > 1:
            raise ValueError(f"the runs of one population may differ only in {' and '.join(PER_AGENT)}")
        cfg = self.cfg = dataclasses.replace(cfgs[0], env_backend=env_backend(cfgs[0]))
        self.progress = progress
        self.method = get_method(cfg.method)
        self.loss_fn = self.method.loss_fn
        self.coefs = loss_coefs(cfg.loss_settings(), self.method.gate_loss, clipped=cfg.algo == "ppo")
        torch.set_num_threads(cfg.threads)
        check_loggers(cfg)  # a missing extra fails before anything is written
        seeds, oversights = [c.seed for c in cfgs], [c.oversight for c in cfgs]
        extra = json.loads(cfg.env_kwargs)
        self.envs = make_agent_envs(cfg.env_backend, cfg.env, cfg.num_envs, oversights, seeds, cfg.device, **extra)
        if progress:
            print(envs.describe_vectorization(cfg.env, cfg.num_envs, **cfg.env_settings()))
        self.eval_envs = [make_eval_env(cfg.env, cfg.eval_envs, p, **extra) for p in oversights]  # numpy backend's
        self.episode_steps = envs.episode_step_limit(self.eval_envs[0])
        self.last_results: dict[int, dict] = {}
        self.population = Population([self._initial_policy(seed) for seed in seeds])
        for p in self.population.params.values():
            p.requires_grad_(True)
        self.optimizer = AgentAdam(self.population.params, eps=cfg.adam_eps)
        self.action_keys = torch.stack([stream_keys(s, cfg.num_envs, ACTION_STREAM, cfg.device) for s in seeds])
        self.shuffle_keys = torch.stack(
            [stream_keys(s, cfg.steps_per_update, MINIBATCH_STREAM, cfg.device) for s in seeds]
        )
        self.label_keys = label_noise_keys(seeds, cfg.num_envs, cfg.device)
        self.agents = [
            self._agent(dataclasses.replace(c, env_backend=cfg.env_backend), d)
            for c, d in zip(cfgs, run_dirs, strict=True)
        ]
        self.obs = self.envs.reset()

    def _initial_policy(self, seed: int) -> ActorCritic:
        torch.manual_seed(seed)  # an agent's initial weights are those of its seed alone
        return build_policy(self.cfg, self.method, self.envs.obs_shape).to(self.cfg.device)

    def _agent(self, cfg: TrainConfig, run_dir: Path) -> Agent:
        scales = self.method.budget_scales_with_oversight
        return Agent(cfg, Path(run_dir), scales, cfg.num_updates(scales), cfg.eval_interval(scales))

    @property
    def size(self) -> int:
        return len(self.agents)

    # ----- state on disk -----------------------------------------------------------------------------------------

    def start(self, k: int) -> None:
        """Write agent ``k``'s config.json: it trains from scratch."""
        RunWriter(self.agents[k].run_dir).start(self.run_config(k))

    def run_config(self, k: int) -> dict:
        """Agent ``k``'s config.json content."""
        agent = self.agents[k]
        vectorization = envs.vectorization_of(agent.cfg.env, **agent.cfg.env_settings())
        return run_config(agent.cfg, agent.num_updates, self.envs.obs_shape, vectorization=vectorization)

    def save(self, k: int) -> None:
        agent = self.agents[k]
        state = {
            "policy": self.population.agent_state(k),
            "optimizer": self.optimizer.agent_state(k),
            "counters": (agent.update, agent.env_steps, agent.wall_s),
            "rows": (agent.train_rows, agent.eval_rows),
            "best": agent.best,
            "env": self.envs.agent_state(k),
            "env_backend": self.cfg.env_backend,
        }
        RunWriter(agent.run_dir).checkpoint(agent.train_rows, agent.eval_rows, lambda path: save_torch(path, state))

    def load(self, k: int) -> None:
        """Restore agent ``k`` from its checkpoint (saved on any device) to continue exactly where it stopped."""
        agent = self.agents[k]
        state = load_torch(agent.run_dir / CHECKPOINT)
        self.population.load_agent_state(k, state["policy"])
        self.optimizer.load_agent_state(k, state["optimizer"])
        agent.update, agent.env_steps, agent.wall_s = state["counters"]
        agent.train_rows, agent.eval_rows = state["rows"]
        agent.best = state["best"]
        self.envs.load_agent_state(k, state["env"])
        self.obs = self.envs.observations()

    # ----- training ----------------------------------------------------------------------------------------------

    def learning_rates(self) -> torch.Tensor:
        """Each agent's learning rate for its next update (linear decay over its own budget with ``anneal_lr``)."""
        rates = [
            a.cfg.lr * (1.0 - a.update / a.num_updates) if a.cfg.anneal_lr and a.num_updates else a.cfg.lr
            for a in self.agents
        ]
        return torch.tensor(rates, dtype=self.dtype, device=self.cfg.device)

    @property
    def dtype(self) -> torch.dtype:
        return next(iter(self.population.params.values())).dtype

    def train_step(self) -> dict[str, torch.Tensor]:
        """One update of every active agent; returns per-agent metrics ``(S,)``."""
        cfg, device = self.cfg, self.cfg.device
        active = torch.tensor([a.active for a in self.agents], device=device)
        counters = torch.tensor([a.update * cfg.num_steps for a in self.agents], device=device)
        keep_graph = cfg.algo == "reinforce" and cfg.reuse_rollout_pass
        rollout, self.obs = collect(
            self.envs, self.population, self.obs, cfg.num_steps, self.action_keys, counters, keep_graph
        )
        wrong = wrong_labels(self.label_keys, counters, cfg.num_steps, cfg.label_noise)
        read = labels_read(rollout, self.method.reads_every_label)
        rollout, flipped = with_label_noise(rollout, wrong, self.method.reads_every_label)  # what every method sees
        lr = self.learning_rates()
        windows = [a.window_steps for a in self.agents]
        steps = None if set(windows) == {cfg.num_steps} else torch.tensor(windows, device=device)
        metrics = self._optimize(build_batch(rollout, self.method, cfg, steps), lr, active)
        dones = rollout.dones.transpose(0, 1).flatten(1)
        labeled = rollout.labeled.transpose(0, 1).flatten(1)
        episodes = dones.sum(1)
        metrics["rollout/episodes"] = episodes.to(self.dtype)
        rewards = per_agent(training_rewards(rollout, self.method.reward_fn)).to(self.dtype)
        metrics["rollout/training_reward"] = rewards.mean(1)  # per step of the window: what the method is paid
        labeled_fraction = (labeled & dones).sum(1) / episodes.clamp(min=1)
        metrics["rollout/labeled_fraction"] = torch.where(episodes > 0, labeled_fraction, torch.nan)
        labels = per_agent(read).sum(1)
        flipped_fraction = per_agent(flipped).sum(1) / labels.clamp(min=1)
        metrics["rollout/flipped_labels"] = torch.where(labels > 0, flipped_fraction, torch.nan)
        metrics["charts/learning_rate"] = lr
        return metrics

    def _optimize(self, batch: Batch, lr: torch.Tensor, active: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if cfg.algo == "reinforce":  # one step on the whole window
            return self._step(batch, lr, active)
        size = batch.actions.shape[1]
        minibatch = size // cfg.num_minibatches
        agents = torch.arange(self.size, device=cfg.device).unsqueeze(1)
        metrics: dict[str, torch.Tensor] = {}
        for epoch in range(cfg.update_epochs):
            counter = torch.tensor([a.update * cfg.update_epochs + epoch for a in self.agents], device=cfg.device)
            order = torch.argsort(uniform(self.shuffle_keys, counter.unsqueeze(1)), dim=1)  # each agent's shuffle
            for start in range(0, minibatch * cfg.num_minibatches, minibatch):
                index = order[:, start : start + minibatch]
                fields = (None if f is None else f[agents, index] for f in batch[:-1])
                metrics = self._step(Batch(*fields, trunk=None), lr, active)
        return metrics

    def _step(self, batch: Batch, lr: torch.Tensor, active: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each active agent's loss, gradient, clip and Adam step; the agents' losses are summed only to share one
        backward pass (their parameters are disjoint)."""
        losses, metrics = self.population.map(self._loss)(batch)
        params = self.population.params
        grads = dict(zip(params, torch.autograd.grad((losses * active).sum(), list(params.values())), strict=True))
        if self.cfg.max_grad_norm > 0:
            clip_grad_norms(grads, self.cfg.max_grad_norm)
        self.optimizer.step(grads, lr, active)
        return metrics

    def _loss(self, policy: ActorCritic, batch: Batch):
        return self.loss_fn(batch, policy, self.coefs)

    # ----- evaluation --------------------------------------------------------------------------------------------

    def evaluate(self, ks: list[int]) -> None:
        """Evaluate the variants of agents ``ks`` together on their fixed evaluation episodes (fresh environments at
        each agent's oversight, reset with its evaluation seed); track early stopping's best checkpoints."""
        cfg = self.cfg
        results = [{} for _ in ks]
        for variant in self.population.template.variants:
            records = self._play(ks, variant, EVAL_SEED_OFFSET)
            for i, k in enumerate(ks):
                results[i][variant] = summarize({n: r[:, i] for n, r in records.items()}, self.agents[k].cfg.gamma)
        if self.method.early_stopping:
            records = self._play(ks, "trained", VALIDATION_SEED_OFFSET)
            wrong = self._wrong_validation_labels(ks, records["dones"].shape[0])
            for i, k in enumerate(ks):
                own = {n: r[:, i] for n, r in records.items()}
                signal = summarize(own, cfg.gamma)
                signal["verified_return"] = verified_return(reported(own, wrong[:, i]))  # with the overseer's noise
                results[i]["best"] = self._track_best(k, signal, results[i]["trained"])
        for k, result in zip(ks, results, strict=True):
            agent = self.agents[k]
            agent.eval_rows += [{**agent.stamp(), "policy": variant, **m} for variant, m in result.items()]
            agent.log_scalars(eval_scalars(result))
        self.last_results = dict(zip(ks, results, strict=True))

    def _play(self, ks: list[int], variant: str, seed_offset: int) -> dict[str, np.ndarray]:
        """One evaluation window of ``variant`` for agents ``ks``, on fresh environments reset with each agent's
        seed plus ``seed_offset``; ``(T, len(ks), N)`` step records."""
        cfg = self.cfg
        seeds = [self.agents[k].cfg.seed + seed_offset for k in ks]
        if cfg.env_backend == "torch":
            oversights = [self.agents[k].cfg.oversight for k in ks]
            agent_envs = TorchAgentEnvs(
                cfg.env, cfg.eval_envs, oversights, seeds, cfg.device, **json.loads(cfg.env_kwargs)
            )
        else:
            agent_envs = NumpyAgentEnvs([self.eval_envs[k] for k in ks], seeds, cfg.device)
        act = self.population.map(variant_step(variant), agents=ks)
        keys = evaluation_keys(seeds, cfg.eval_envs, cfg.device)
        return play_window(agent_envs, lambda obs: act(obs.to(self.dtype)), self.episode_steps, keys)

    def _wrong_validation_labels(self, ks: list[int], num_steps: int) -> np.ndarray:
        """``(T, len(ks), N)``: which labels of agents ``ks``' validation window the overseer gets wrong, from
        streams keyed by each agent's validation seed, as in training (:func:`wrong_labels`)."""
        seeds = [self.agents[k].cfg.seed + VALIDATION_SEED_OFFSET for k in ks]
        keys = label_noise_keys(seeds, self.cfg.eval_envs, self.cfg.device)
        start = torch.zeros(len(ks), dtype=torch.int64, device=self.cfg.device)
        return wrong_labels(keys, start, num_steps, self.cfg.label_noise).cpu().numpy()

    def _track_best(self, k: int, validation: dict[str, float], trained: dict[str, float]) -> dict[str, float]:
        """Agent ``k``'s early-stopping record: remember its parameters if its validation signal improved."""
        agent = self.agents[k]
        signal = validation["true_return" if agent.cfg.early_stop_signal == "oracle" else "verified_return"]
        best = agent.best
        if not math.isnan(signal) and signal > best["signal"]:
            best.update(
                signal=signal,
                update=agent.update,
                state=self.population.agent_state(k),
                row=dict(trained),
                evals_since=0,
            )
        else:
            best["evals_since"] += 1
        return best["row"] if best["row"] is not None else dict(trained)

    # ----- the loop ----------------------------------------------------------------------------------------------

    def open_logs(self) -> None:
        """Open the loggers of each run that has none open yet; if one fails to open (a W&B run that cannot start),
        close those opened and raise."""
        try:
            for k, agent in enumerate(self.agents):
                if agent.loggers is None:
                    agent.loggers = open_loggers(agent.cfg, agent.run_dir, self.run_config(k))
        except BaseException:
            self.close_logs(failed=True)
            raise

    def close_logs(self, failed: bool = False) -> None:
        for agent in self.agents:
            agent.close_logs(failed)

    def run(self) -> list[dict]:
        """Train every agent to its budget (or early stop); return the summaries, in the order of the runs. Each
        tracked run (``--track``) is a W&B run while it trains, finished as failed if training raises."""
        try:
            self.open_logs()
            return self._train_to_budgets()
        except BaseException:
            self.close_logs(failed=True)
            raise

    def _train_to_budgets(self) -> list[dict]:
        bar = tqdm(
            total=sum(a.cfg.trained_steps(a.scales) for a in self.agents),
            initial=sum(a.env_steps for a in self.agents),
            unit="step",
            unit_scale=True,
            disable=not self.progress,
            desc=self.cfg.method if self.size == 1 else f"{self.cfg.method} x {self.size}",
        )
        with bar:  # closed when interrupted too, so that it is not drawn again after the caller's last words
            return self._train_with(bar)

    def _train_with(self, bar) -> list[dict]:
        summaries: dict[int, dict] = {}
        self.checkpointed_at = time.monotonic()
        fresh = [k for k, agent in enumerate(self.agents) if agent.update == 0 and not agent.eval_rows]
        if fresh:
            self.evaluate(fresh)
            self._report(bar)
        for k, agent in enumerate(self.agents):
            if not agent.active:  # no budget, or finished before an interruption that came before its summary
                self.save(k)
                summaries[k] = self._finish(k)
        while any(a.active for a in self.agents):
            training = {k: a.window_steps * self.cfg.num_envs for k, a in enumerate(self.agents) if a.active}
            tick = time.perf_counter()
            metrics = self.train_step()
            metrics["finite"] = self.finite_agents()
            rows = {key: value.tolist() for key, value in metrics.items()}  # one transfer per update
            self.check_finite(rows.pop("finite"), training)
            elapsed = time.perf_counter() - tick
            for k, steps in training.items():
                self._record_update(k, {key: values[k] for key, values in rows.items()}, steps, elapsed)
            bar.update(sum(training.values()))
            due = [
                k
                for k in training
                if self.agents[k].update % self.agents[k].eval_interval == 0 or not self.agents[k].active
            ]
            if due:
                self.evaluate(due)
                self._report(bar)
            for k in due:
                self.save(k)
                capture_video(self.agents[k].cfg, self.agents[k].run_dir, self.agents[k].env_steps)
                if not self.agents[k].active:
                    summaries[k] = self._finish(k)
            self.save_on_time([k for k in training if k not in due])
        return [summaries[k] for k in range(self.size)]

    def save_on_time(self, ks: list[int]) -> None:
        """Checkpoint agents ``ks`` once ``checkpoint_every_s`` has passed since the last such checkpoint, so that a
        run stopped between evaluations loses at most that much training. A checkpoint holds the whole state at an
        update (rows included), so resuming from one computes what the run would have, and its CSVs end at their own
        updates (train.csv at this one, eval.csv at the last evaluation) until the summary, written at the end."""
        every = self.cfg.checkpoint_every_s
        if every > 0 and time.monotonic() - self.checkpointed_at >= every:
            for k in ks:
                self.save(k)
            self.checkpointed_at = time.monotonic()

    def finite_agents(self) -> torch.Tensor:
        """``(S,)``: whether each agent's parameters are all finite."""
        finite = [torch.isfinite(p).flatten(1).all(1) for p in self.population.params.values()]
        return torch.stack(finite).all(0)

    def check_finite(self, finite: list[bool], training: dict[int, int]) -> None:
        """Stop on the first agent whose update made its parameters non-finite (NaN or inf): its run directory keeps
        its last checkpoint, from before."""
        diverged = next((k for k in training if not finite[k]), None)
        if diverged is not None:
            agent = self.agents[diverged]
            raise Diverged(
                f"{agent.run_dir}: training diverged at update {agent.update + 1} (its parameters became NaN or"
                " infinite); the run keeps its last checkpoint, from before; try a lower --lr"
            )

    def _record_update(self, k: int, metrics: dict[str, float], steps: int, elapsed: float) -> None:
        agent = self.agents[k]
        agent.update += 1
        agent.env_steps += steps
        agent.wall_s += elapsed
        metrics["time/env_steps_per_s"] = steps / max(elapsed, 1e-9)
        agent.train_rows.append({**agent.stamp(), **metrics})
        agent.log_scalars(metrics)

    def _report(self, bar) -> None:
        """The deployed policy's latest true return (mean over the agents just evaluated) on the progress bar."""
        deployed = [result[self.method.deploy] for result in self.last_results.values()]
        postfix = {
            "true_return": f"{np.mean([d['true_return'] for d in deployed]):.3f}",
            "hacking_gap": f"{np.mean([d['hacking_gap'] for d in deployed]):.2f}",
        }
        if self.size > 1:
            postfix["finished"] = f"{sum(not a.active for a in self.agents)}/{self.size}"
        bar.set_postfix(postfix)

    def _finish(self, k: int) -> dict:
        """Write agent ``k``'s summary.json (last, so a run with a summary is complete) and close its logs."""
        agent = self.agents[k]
        summary = run_summary(
            agent.cfg, self.method.deploy, agent.eval_rows, agent.update, agent.env_steps, agent.wall_s
        )
        summary["population"] = self.size
        if self.method.early_stopping:
            summary["early_stopping"] = {
                "signal": agent.cfg.early_stop_signal,
                "best_update": agent.best["update"],
                "best_signal": agent.best["signal"],
                "stopped_early": agent.stopped_early,
            }
        RunWriter(agent.run_dir).finish(summary)
        agent.close_logs()
        return summary
