"""RoutedPPO: SB3's PPO with episode labels back-filled onto every step and the package's routed loss.

How the pieces fit SB3 without copying ``collect_rollouts``:

- :class:`EpisodeLabels` is a callback that RoutedPPO puts first in every ``learn`` call. ``collect_rollouts`` calls
  its ``on_step`` after each ``env.step`` and before ``rollout_buffer.add``, with ``dones``, ``infos``, ``rewards``
  and ``rollout_buffer`` in its locals. It records the step's episode ends and rewards into the buffer.
- :class:`RoutedRolloutBuffer` stores the method's training reward in ``add`` (in place of the environment's), and,
  when SB3 computes advantages at the end of the rollout, back-fills each step with its episode's label
  (:func:`oversight_rl.core.labels.backfill` and :func:`~oversight_rl.core.labels.episode_routes`). Its samples carry
  them to the loss as ``routes``, ``verified`` and ``unfinished`` fields, as sb3-contrib's MaskablePPO carries masks.
- :meth:`RoutedPPO.train` calls the package's loss (:mod:`oversight_rl.core.losses`), the same function the native
  trainer calls, on the wrapped module.

Episodes still running when the rollout ends are unlabeled (routed to both experts), as in the native trainer, and
a time-out ends an episode with reward 0 and no bootstrap, unless ``bootstrap_timeouts`` asks for SB3's.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Generator, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, ConvertCallback
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import explained_variance
from tqdm.auto import tqdm

from oversight_rl.core.labels import UNFINISHED, Route, backfill, episode_routes, filtering_mask, verified_mask
from oversight_rl.core.losses import LOSS_SETTINGS, Batch, LossCoefs, loss_coefs
from oversight_rl.core.methods import Method, get_method
from oversight_rl.core.returns import gae, terminal_rewards
from oversight_rl.engine.config import TrainConfig
from oversight_rl.sb3.policies import ModulePolicy, MoePolicy, SingleExpertPolicy
from oversight_rl.sb3.vec_env import watched_terminals

EPISODE_END_KEYS = ("terminal", "labeled", "ghost_overseen")
"""What the info of a step that ends an episode must hold (DiamondGhostEnv puts them there)."""


class RoutedRolloutSamples(NamedTuple):
    """SB3's ``RolloutBufferSamples`` plus each sample's episode label."""

    observations: torch.Tensor
    actions: torch.Tensor
    old_values: torch.Tensor
    old_log_prob: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    routes: torch.Tensor  # Route code of the episode's label: DIAMOND, GHOST, or BOTH (unlabeled or unfinished)
    verified: torch.Tensor  # 1.0 where an overseer can verify the episode's outcome (labeled or timed out)
    unfinished: torch.Tensor  # 1.0 where the episode had not ended when the rollout did
    mc_returns: torch.Tensor  # return-to-go of the training reward with no baseline (lambda 1), for routed_advantage
    watched: torch.Tensor  # the episode acting at this step has an overseen terminal, for routed_advantage


ADDED_FIELDS = ("routes", "verified", "unfinished", "mc_returns", "watched")  # RoutedRolloutSamples' own fields


class RoutedRolloutBuffer(RolloutBuffer):
    """A ``RolloutBuffer`` that also holds every step's episode label, back-filled from the step that ends it, and
    trains on the method's reward.

    :meth:`record_step` must be called once per step, after ``env.step`` and before ``add`` (RoutedPPO's
    :class:`EpisodeLabels` callback does it); ``compute_returns_and_advantage`` then fills ``routes``, ``verified``,
    ``unfinished`` and ``mc_returns``.

    :param training_reward: ``any_terminal``, ``proxy``, ``true`` or a function of the same signature (see
    :data:`oversight_rl.core.returns.REWARDS`)
        replaces the environment's reward; None keeps it
    :param bootstrap_timeouts: keep what SB3 adds to the reward of a step that truncates an episode (``gamma`` times
        the value of its last observation); False treats a time-out as an episode end worth 0, as the native trainer
    """

    def __init__(self, *args, training_reward: str | None = None, bootstrap_timeouts: bool = True, **kwargs):
        self.training_reward, self.bootstrap_timeouts = training_reward, bootstrap_timeouts
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        shape = (self.buffer_size, self.n_envs)
        self.dones = np.zeros(shape, dtype=bool)
        self.terminal = np.zeros(shape, dtype=np.int8)
        self.labeled = np.zeros(shape, dtype=bool)
        self.ghost_overseen = np.zeros(shape, dtype=bool)
        self.env_rewards = np.zeros(shape, dtype=np.float32)
        self.recorded = np.zeros(self.buffer_size, dtype=bool)
        self.routes = np.zeros(shape, dtype=np.int64)
        self.verified = np.zeros(shape, dtype=np.float32)
        self.unfinished = np.zeros(shape, dtype=np.float32)
        self.mc_returns = np.zeros(shape, dtype=np.float32)
        self.watched = np.zeros(shape, dtype=bool)
        super().reset()

    def record_step(self, dones: np.ndarray, infos: list[dict], rewards: np.ndarray) -> None:
        """Store the episode ends and the environment's rewards of the step about to be added."""
        t = self.pos
        if t >= self.buffer_size:
            raise RuntimeError("record_step called on a full RoutedRolloutBuffer; call reset() first")
        self.dones[t], self.env_rewards[t] = dones, rewards
        for i in np.flatnonzero(dones):
            missing = [key for key in EPISODE_END_KEYS if key not in infos[i]]
            if missing:
                raise KeyError(
                    f"RoutedPPO needs {EPISODE_END_KEYS} in the info of a step that ends an episode (as "
                    f"DiamondGhostEnv gives them); env {i} lacks {missing}, its info has {sorted(infos[i])}"
                )
            self.terminal[t, i] = infos[i]["terminal"]
            self.labeled[t, i] = infos[i]["labeled"]
            self.ghost_overseen[t, i] = infos[i]["ghost_overseen"]
        self.recorded[t] = True

    def record_watched(self, t: int, watched: np.ndarray) -> None:
        """Store whether the episodes that act in step ``t`` have an overseen terminal (past the end: ignored)."""
        if t < self.buffer_size:
            self.watched[t] = watched

    def add(self, obs, action, reward, episode_start, value, log_prob) -> None:
        """SB3's ``add``, with the step's reward replaced by the training reward."""
        super().add(obs, action, self.step_reward(np.asarray(reward)), episode_start, value, log_prob)

    def step_reward(self, reward: np.ndarray) -> np.ndarray:
        """The reward to store for the current step, given the one SB3 passes (the env's, plus time-out bootstraps)."""
        t = self.pos
        if not self.recorded[t]:
            raise RuntimeError(
                "episode ends were not recorded for this step: a RoutedRolloutBuffer is filled by RoutedPPO, whose "
                "EpisodeLabels callback calls record_step after each env.step"
            )
        env_reward = self.env_rewards[t]
        if self.training_reward is None:
            base = env_reward
        else:  # self.terminal[t] is Terminal.NONE where no episode ended
            base = terminal_rewards(self.terminal[t], self.ghost_overseen[t], self.training_reward)
        return base + (reward - env_reward) if self.bootstrap_timeouts else base

    def compute_returns_and_advantage(self, last_values: torch.Tensor, dones: np.ndarray) -> None:
        self.backfill_labels()
        super().compute_returns_and_advantage(last_values, dones)
        rewards, values = torch.from_numpy(self.rewards), torch.from_numpy(self.values)
        last = last_values.detach().cpu().flatten().to(values.dtype)
        self.mc_returns = gae(rewards, values, torch.from_numpy(self.dones), last, self.gamma, 1.0)[1].numpy()

    def backfill_labels(self) -> None:
        """Give every step its episode's route, verification and whether it ended, from the step that ends it."""
        if not self.recorded.all():
            raise RuntimeError("backfill_labels needs every step recorded (record_step) first")
        dones = torch.from_numpy(self.dones)
        outcome = backfill(torch.from_numpy(self.terminal), dones, UNFINISHED)
        labeled = backfill(torch.from_numpy(self.labeled), dones, False)
        self.routes = episode_routes(outcome, labeled).long().numpy()
        self.verified = verified_mask(outcome, labeled).float().numpy()
        self.unfinished = (outcome == UNFINISHED).float().numpy()

    def labeled_fraction(self) -> float:
        """Fraction of the episodes that ended in this rollout which were labeled (NaN if none ended)."""
        return float(self.labeled[self.dones].mean()) if self.dones.any() else float("nan")

    def get(self, batch_size: int | None = None) -> Generator[RoutedRolloutSamples, None, None]:
        if not self.generator_ready:
            for name in ADDED_FIELDS:
                setattr(self, name, self.swap_and_flatten(getattr(self, name)))
        yield from super().get(batch_size)

    def _get_samples(self, batch_inds: np.ndarray, env=None) -> RoutedRolloutSamples:
        samples = super()._get_samples(batch_inds, env)
        added = (self.to_torch(getattr(self, name)[batch_inds].flatten()) for name in ADDED_FIELDS)
        return RoutedRolloutSamples(*samples, *added)


class EpisodeLabels(BaseCallback):
    """RoutedPPO's own callback, first in every ``learn``. After each env step it records the step's episode ends
    and rewards into the RoutedRolloutBuffer; at the end of a rollout it logs ``rollout/episodes`` and
    ``rollout/labeled_fraction`` (of the episodes that ended).
    """

    def _on_rollout_start(self) -> None:
        self._record_watched(self.model.rollout_buffer, 0)

    def _on_step(self) -> bool:
        buffer = self.locals["rollout_buffer"]
        buffer.record_step(self.locals["dones"], self.locals["infos"], self.locals["rewards"])
        self._record_watched(buffer, buffer.pos + 1)  # the episodes now current act in the next step
        return True

    def _record_watched(self, buffer: RoutedRolloutBuffer, t: int) -> None:
        """Record which current episodes have an overseen terminal, where the routed estimator needs it."""
        if self.model.routed_advantage == "unwatched_baseline":
            buffer.record_watched(t, watched_terminals(self.training_env))

    def _on_rollout_end(self) -> None:
        buffer = self.locals["rollout_buffer"]
        self.logger.record("rollout/episodes", int(buffer.dones.sum()))
        self.logger.record("rollout/labeled_fraction", buffer.labeled_fraction())


class StepProgress(BaseCallback):
    """A tqdm progress bar of environment steps (SB3's own bar needs the ``rich`` package)."""

    def __init__(self, total: int):
        super().__init__()
        self.total = total

    def _on_training_start(self) -> None:
        self.bar = tqdm(total=self.total, unit="step", unit_scale=True, desc="RoutedPPO")

    def _on_step(self) -> bool:
        self.bar.update(min(self.training_env.num_envs, self.total - self.bar.n))  # SB3 ends on a whole rollout
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


PPO_KEYWORDS = {
    "clip_coef": "clip_range",
    "ent_coef": "ent_coef",
    "vf_coef": "vf_coef",
    "normalize_advantages": "normalize_advantage",
}
"""PPO's own keywords (and attributes) for the loss settings it has. Every other loss setting
(:data:`oversight_rl.core.losses.LOSS_SETTINGS`) is a keyword and attribute of RoutedPPO's own, of the same name."""


def loss_keywords(settings: Mapping[str, Any]) -> dict[str, Any]:
    """RoutedPPO's keywords for loss ``settings`` given by their TrainConfig names."""
    return {PPO_KEYWORDS.get(name, name): value for name, value in settings.items()}


def own_loss_defaults() -> dict[str, Any]:
    """The loss settings PPO lacks, which RoutedPPO takes itself, with the defaults TrainConfig gives them."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    return {name: defaults[name] for name in LOSS_SETTINGS if name not in PPO_KEYWORDS}


def check_arguments(policy_class: Any, spec: Method, method: str, own_loss_settings: dict, kwargs: dict):
    """Raise ``TypeError``/``ValueError`` before building anything when RoutedPPO's arguments do not fit."""
    if not (isinstance(policy_class, type) and issubclass(policy_class, ModulePolicy)):
        name = getattr(policy_class, "__name__", policy_class)
        raise TypeError(f"RoutedPPO needs 'MoePolicy' or 'SingleExpertPolicy' (oversight_rl.sb3), got {name!r}")
    if policy_class.kind != spec.policy:
        wanted = "MoePolicy" if spec.policy == "moe" else "SingleExpertPolicy"
        raise ValueError(f"method {method!r} trains a {wanted}, got {policy_class.__name__}")
    if spec.early_stopping:
        raise ValueError(f"method {method!r} stops early, which a training run does, not RoutedPPO; use 'naive'")
    if kwargs.get("clip_range_vf") is not None:
        raise ValueError("RoutedPPO does not support clip_range_vf; leave it None")
    for name, value in own_loss_settings.items():
        if not LOSS_SETTINGS[name].allows(value):
            raise ValueError(f"{name} must be {LOSS_SETTINGS[name].allowed}, got {value!r}")


class RoutedPPO(PPO):
    """PPO trained with a method's reward and loss: by default gradient routing with the gate's cross-entropy.

    ``RoutedPPO("MoePolicy", env)`` trains the paper's routing on a DiamondGhost environment: reward +1 for any
    terminal, labeled samples update only the matching expert, and the gate learns the labels. Deploy the Diamond
    expert with ``model.policy.steer("diamond")`` (or ``model.policy.expert("diamond")`` for a steered copy).

    :param method: a registered method (:data:`oversight_rl.core.methods.METHODS`): its training reward, loss, routing,
        gate loss and sample filter. Mixture methods take ``"MoePolicy"``, single-expert ones ``"SingleExpertPolicy"``.
        ``naive_early_stop`` is not an algorithm (train ``naive`` and keep the best checkpoint).
    :param loss settings: every setting the loss's coefficients come from (:class:`oversight_rl.core.losses.LossCoefs`)
        is a keyword. Those PPO has are PPO's (:data:`PPO_KEYWORDS`: ``clip_range``, ``ent_coef``, ``vf_coef``,
        ``normalize_advantage``, with PPO's defaults); the others are RoutedPPO's own, named, defaulted and checked
        as the TrainConfig fields of the same name, among them ``gate_coef=0.1`` (weight of the gate's cross-entropy,
        averaged over labeled samples, for methods with a gate loss), ``routed_advantage`` (the mixture methods'
        advantage estimator, TrainConfig's default: see :func:`oversight_rl.core.losses.routed_advantages`) and
        ``filtering="tuned"`` (which samples the filtering method keeps and how they are averaged: ``tuned``,
        ``paper`` or ``finished_only``)
    :param bootstrap_timeouts: SB3 adds ``gamma`` times the value of the last observation to the reward of a step
        that truncates an episode. False (the default) treats a time-out as an episode end worth 0, as the native
        trainer and the evaluation metric do. Measured on the default run (routing, 10% oversight, 2M steps, seeds
        0-4): the Diamond expert's final true return averaged 0.48 with SB3's bootstrap, 0.56 without (native: 0.57)
    :param threads: torch CPU threads to use (``torch.set_num_threads``); one is about 3x faster than two for these
        small networks. None leaves torch's setting alone.
    :param kwargs: PPO's arguments, with PPO's defaults (``gamma=0.99``; the package's runs use 0.97, without which
        naive training does not learn to hack: see :func:`oversight_rl.sb3.train.make_model` for all its settings).
        ``clip_range_vf`` is not supported. The value loss is the package's ``0.5 * MSE``; ``train/value_loss`` logs it.
    """

    policy_aliases = {**PPO.policy_aliases, "MoePolicy": MoePolicy, "SingleExpertPolicy": SingleExpertPolicy}
    policy: ModulePolicy
    rollout_buffer: RoutedRolloutBuffer

    def __init__(
        self,
        policy: str | type[ModulePolicy],
        env: Any,
        method: str = "routing",
        *,
        bootstrap_timeouts: bool = False,
        threads: int | None = 1,
        **kwargs,
    ):
        if threads is not None:
            torch.set_num_threads(threads)
        spec = get_method(method)
        own_loss_settings = {name: kwargs.pop(name, default) for name, default in own_loss_defaults().items()}
        if kwargs.get("_init_setup_model", True):  # BaseAlgorithm.load builds bare and then restores the method
            check_arguments(self.policy_aliases.get(policy, policy), spec, method, own_loss_settings, kwargs)
        if spec.constant_gate is not None:
            kwargs["policy_kwargs"] = {"constant_gate": spec.constant_gate, **(kwargs.get("policy_kwargs") or {})}
        kwargs.setdefault("rollout_buffer_class", RoutedRolloutBuffer)
        buffer_kwargs = {"training_reward": spec.reward_fn, "bootstrap_timeouts": bootstrap_timeouts}
        kwargs["rollout_buffer_kwargs"] = {**buffer_kwargs, **(kwargs.get("rollout_buffer_kwargs") or {})}
        self.method = method
        for name, value in own_loss_settings.items():  # gate_coef, filtering...: saved with the model
            setattr(self, name, value)
        super().__init__(policy, env, **kwargs)

    @property
    def method_spec(self) -> Method:
        return get_method(self.method)

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.rollout_buffer, RoutedRolloutBuffer):
            raise TypeError(f"RoutedPPO needs a RoutedRolloutBuffer, got {type(self.rollout_buffer).__name__}")

    def _setup_learn(self, *args, **kwargs):
        if self.policy.steered is not None:
            raise ValueError(
                f"the policy is steered to the {self.policy.steered} expert; steering is for deployment, so call "
                "model.policy.steer(None) before learning"
            )
        return super()._setup_learn(*args, **kwargs)

    def learn(self, total_timesteps: int, callback: MaybeCallback = None, *args, progress_bar: bool = True, **kwargs):
        """PPO's ``learn``, with a tqdm progress bar of environment steps unless ``progress_bar=False``."""
        if progress_bar:
            callback = [StepProgress(total_timesteps), *self._callbacks(callback)]
        return super().learn(total_timesteps, callback, *args, progress_bar=False, **kwargs)

    @staticmethod
    def _callbacks(callback: MaybeCallback) -> list[BaseCallback]:
        if callback is None:
            return []
        if isinstance(callback, list):
            return callback
        return [callback if isinstance(callback, BaseCallback) else ConvertCallback(callback)]

    def _init_callback(self, callback: MaybeCallback, progress_bar: bool = False) -> BaseCallback:
        """The user's callbacks, after :class:`EpisodeLabels`."""
        return super()._init_callback([EpisodeLabels(), *self._callbacks(callback)], progress_bar)

    def loss_settings(self) -> dict[str, Any]:
        """The model's loss settings by their TrainConfig names (``clip_coef`` is PPO's clip-range schedule)."""
        return {name: getattr(self, PPO_KEYWORDS.get(name, name)) for name in LOSS_SETTINGS}

    def loss_coefs(self, clip: float) -> LossCoefs:
        """The loss's coefficients, built as the native trainer builds them, with ``clip`` from PPO's schedule."""
        return loss_coefs({**self.loss_settings(), "clip_coef": clip}, self.method_spec.gate_loss)

    def kept(self, samples: RoutedRolloutSamples) -> torch.Tensor:
        """1.0 for the samples filtering trains on: verified episodes, and unfinished ones unless ``finished_only``."""
        return filtering_mask(samples.verified.bool(), samples.unfinished.bool(), self.filtering).float()

    def batch(self, samples: RoutedRolloutSamples) -> Batch:
        """The loss's input from buffer samples: routes only for routing methods, weights only for filtering."""
        spec = self.method_spec
        return Batch(
            obs=self.policy.preprocess(samples.observations),
            actions=samples.actions.long().flatten(),
            old_logp=samples.old_log_prob,
            advantages=samples.advantages,
            returns=samples.returns,
            weights=self.kept(samples) if spec.verified_only else torch.ones_like(samples.verified),
            routes=samples.routes if spec.route else torch.full_like(samples.routes, Route.BOTH),
            labels=samples.routes,
            mc_returns=samples.mc_returns,
            watched=samples.watched.bool(),
        )

    def train(self) -> None:
        """One PPO update with the method's loss from :mod:`oversight_rl.core.losses`.

        PPO.train computes its loss inline, with no hook for per-sample routes or the gate's cross-entropy, so this
        replaces it. It keeps PPO.train's structure: learning-rate and clip schedules, epochs of shuffled
        minibatches, the target_kl stop, gradient clipping and the ``train/`` logger records.
        """
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        clip = self.clip_range(self._current_progress_remaining)
        coefs = self.loss_coefs(clip)
        history: dict[str, list[float]] = defaultdict(list)
        for epoch in range(self.n_epochs):
            completed = self._epoch(coefs, history)
            self._n_updates += 1
            if not completed:
                if self.verbose >= 1:
                    print(f"Early stopping at step {epoch} due to reaching max kl: {history['losses/approx_kl'][-1]}")
                break
        self._record_update(history, clip)

    def _epoch(self, coefs: LossCoefs, history: dict[str, list[float]]) -> bool:
        """One pass over the buffer in shuffled minibatches; False if it stopped at the target KL."""
        loss_fn = self.method_spec.loss_fn
        for samples in self.rollout_buffer.get(self.batch_size):
            loss, metrics = loss_fn(self.batch(samples), self.policy.module, coefs)
            metrics = {key: float(value) for key, value in metrics.items()}
            if self.target_kl is not None and metrics["losses/approx_kl"] > 1.5 * self.target_kl:
                history["losses/approx_kl"].append(metrics["losses/approx_kl"])
                return False
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            for key, value in {**metrics, "losses/total": loss.item()}.items():
                history[key].append(value)
        return True

    def _record_update(self, history: dict[str, list[float]], clip: float) -> None:
        """SB3's ``train/`` records (means over minibatches) and ``train/gate_loss``."""
        buffer = self.rollout_buffer
        names = {
            "losses/policy": "train/policy_gradient_loss",
            "losses/value": "train/value_loss",
            "losses/approx_kl": "train/approx_kl",
            "losses/gate": "train/gate_loss",
        }
        for key, name in names.items():
            if history[key]:
                self.logger.record(name, float(np.mean(history[key])))
        if history["losses/entropy"]:
            self.logger.record("train/entropy_loss", -float(np.mean(history["losses/entropy"])))  # SB3's sign
        if history["losses/total"]:
            self.logger.record("train/loss", history["losses/total"][-1])
        explained = explained_variance(buffer.values.flatten(), buffer.returns.flatten())
        self.logger.record("train/explained_variance", explained)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/clip_range", clip)
