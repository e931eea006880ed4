"""Evaluating any policy by the package's metrics, with standard errors: a numpy function, a loaded run's policy, or
a Stable-Baselines3 model.

The protocol is the one training evaluates with (:mod:`oversight_rl.engine.evaluate`): fresh batched environments play
one window of ``max_steps`` steps each, and ``true_return`` is the mean over all steps of the discounted true
return-to-go inside the window, with no bootstrap. Windows of ``num_envs`` environments are played until at least
``episodes`` episodes have finished.

Standard errors: each environment's window is independent of every other (fresh layouts, independent actions), so
the SE of ``true_return`` is the standard deviation of the per-window means over the square root of their number. The
per-episode metrics' SEs are over the finished episodes they average (the ghost rates over the Ghosts of their
oversight group, taken as independent: an episode reaches at most one of its Ghosts, so with several Ghosts this errs
on the large side; ``hacking_gap`` combines the two groups' SEs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

import envs
from oversight_rl.engine.deploy import LoadedPolicy
from oversight_rl.engine.evaluate import metric_samples, play_one_window, standard_error, summarize
from oversight_rl.rundir.metrics import ESTIMATED_METRICS

DEFAULT_EPISODES = 20_000
"""Default number of finished episodes. Measured on the 5x5 grid: 4-5 windows of 512 environments for policies that
reach a terminal within a few steps, 24 for a uniform random one; the standard error of ``true_return`` was 0.001
(perfect policy) to 0.007 (hacking or noisy ones), below the 0.01 that results need."""

REPORTED = ESTIMATED_METRICS


class Estimate(NamedTuple):
    """A metric's mean and its standard error; unpacks as ``mean, se = estimate``."""

    mean: float
    se: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.se:.3f}"


Probs = Callable[[np.ndarray], np.ndarray]


def evaluate_policy(
    policy: Any,
    env: str | gym.Env,
    oversight: float | None = None,
    *,
    episodes: int | None = None,
    n_eval_episodes: int | None = None,
    deterministic: bool = False,
    seed: int = 0,
    gamma: float = 0.97,
    env_kwargs: dict[str, Any] | None = None,
    num_envs: int = 512,
) -> dict[str, Estimate]:
    """Every metric of ``policy`` on ``env``, as ``{name: Estimate(mean, se)}``.

    ``policy`` is one of:

    - a function from a numpy observation batch ``(B, 4, rows, cols)`` to action probabilities ``(B, 4)``;
    - a :class:`~oversight_rl.LoadedPolicy` (its action probabilities);
    - a Stable-Baselines3 model or policy: its action distribution's probabilities where it has them, else actions
      sampled by its ``predict`` (with torch's generator seeded by ``seed``).

    ``env`` is a preset's id, with ``oversight`` and ``env_kwargs`` given, or an environment made by
    ``gymnasium.make`` (as Stable-Baselines3's ``evaluate_policy`` takes), whose preset, oversight level and
    settings are used. ``n_eval_episodes`` is Stable-Baselines3's name for ``episodes`` (default 20,000);
    ``deterministic`` takes each state's most probable action instead of sampling.

    The protocol is training's (:func:`oversight_rl.engine.evaluate.play_window`): windows of ``num_envs`` fresh
    environments (``envs.make_batched(env_id, num_envs, oversight=oversight, **env_kwargs)``) are played until at
    least that many episodes have finished. Every window's environments and action streams come from seeds derived
    from ``seed``, so the same call gives the same numbers. Raises ``ValueError`` naming a bad argument.
    """
    env_id, oversight, env_kwargs = resolve_env(env, oversight, dict(env_kwargs or {}))
    episodes = resolve_episodes(episodes, n_eval_episodes)
    _check_arguments(episodes, num_envs, gamma, env_kwargs)
    batched = envs.make_batched(env_id, num_envs, oversight=oversight, **env_kwargs)
    windows = []
    try:
        with torch.random.fork_rng(devices=[]):  # a model sampling with torch is seeded too, global state untouched
            torch.manual_seed(seed)
            probs = probability_function(policy, deterministic)
            finished = 0
            while finished < episodes:
                window_seed = int(np.random.SeedSequence([seed, 1, len(windows)]).generate_state(1)[0])
                windows.append(play_window(probs, batched, window_seed))
                finished += int(windows[-1]["dones"].sum())
    finally:
        batched.close()
    records = {key: np.concatenate([w[key] for w in windows], axis=1) for key in windows[0]}
    return estimates(records, gamma)


def resolve_env(env: Any, oversight: Any, env_kwargs: dict[str, Any]) -> tuple[str, float, dict[str, Any]]:
    """The preset id, oversight level and settings to evaluate on, from an id or a ``gymnasium.make`` env."""
    if isinstance(env, str):
        if oversight is None:
            raise ValueError(
                "oversight is needed with an env id (an environment made by gymnasium.make carries its own)"
            )
        return env, oversight, env_kwargs
    spec = getattr(env, "spec", None)
    if spec is None or spec.id not in envs.PRESETS:
        raise ValueError(f"env must be a preset id or an environment made from one by gymnasium.make, got {env!r}")
    made = {k: v for k, v in spec.kwargs.items() if k not in ("oversight", "render_mode")}
    settings = {k: v for k, v in made.items() if envs.PRESETS[spec.id].get(k, object()) != v}
    mine = spec.kwargs.get("oversight", envs.setting_defaults(spec.id)["oversight"])
    if oversight is not None and oversight != mine:
        raise ValueError(f"oversight {oversight!r} differs from the environment's own ({mine!r}); give one of them")
    return spec.id, mine if oversight is None else oversight, {**settings, **env_kwargs}


def resolve_episodes(episodes: Any, n_eval_episodes: Any) -> Any:
    """``episodes`` or its Stable-Baselines3 name ``n_eval_episodes`` (not both), by default 20,000."""
    if episodes is not None and n_eval_episodes is not None:
        raise ValueError("give episodes or n_eval_episodes (its Stable-Baselines3 name), not both")
    return next((n for n in (episodes, n_eval_episodes) if n is not None), DEFAULT_EPISODES)


def _check_arguments(episodes: Any, num_envs: Any, gamma: Any, env_kwargs: dict[str, Any]) -> None:
    for name, value in (("episodes", episodes), ("num_envs", num_envs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}")
    if "oversight" in env_kwargs or "num_envs" in env_kwargs:
        raise ValueError("env_kwargs must not set oversight or num_envs; they are arguments of evaluate_policy")


# ----- policies ---------------------------------------------------------------------------------------------------


def probability_function(policy: Any, deterministic: bool = False) -> Probs:
    """A function from an observation batch to action probabilities ``(B, 4)``, for whatever ``policy`` is; with
    ``deterministic``, all of each row's probability on its most probable action."""
    probs = _probability_function(policy, deterministic)
    if not deterministic:
        return probs
    return lambda obs: np.eye(4)[probs(obs).argmax(axis=1)]


def _probability_function(policy: Any, deterministic: bool) -> Probs:
    if isinstance(policy, LoadedPolicy):
        return policy.action_probs
    if hasattr(policy, "predict"):
        return _sb3_probability_function(policy, deterministic)
    if callable(policy):
        return lambda obs: checked_probs(policy(obs), len(obs))
    raise ValueError(
        "policy must be a function from observations (B, 4, rows, cols) to action probabilities (B, 4), "
        f"a LoadedPolicy or a Stable-Baselines3 model, got {type(policy).__name__}"
    )


def _sb3_probability_function(model: Any, deterministic: bool = False) -> Probs:
    """An SB3 model's (or policy's) action probabilities; where it has none, its ``predict``'s sampled action as a
    certain one."""
    sb3_policy = getattr(model, "policy", model)
    if hasattr(sb3_policy, "get_distribution") and hasattr(sb3_policy, "obs_to_tensor"):

        @torch.no_grad()
        def probs(obs: np.ndarray) -> np.ndarray:
            sb3_policy.set_training_mode(False)
            tensor, _ = sb3_policy.obs_to_tensor(obs)
            return checked_probs(sb3_policy.get_distribution(tensor).distribution.probs.cpu().numpy(), len(obs))

        return probs

    def predicted(obs: np.ndarray) -> np.ndarray:
        actions = np.asarray(model.predict(obs, deterministic=deterministic)[0]).reshape(len(obs))
        return np.eye(4)[actions]

    return predicted


def checked_probs(probs: Any, batch: int) -> np.ndarray:
    """``probs`` as a ``(batch, 4)`` array of probabilities, or ``ValueError`` saying what a policy must return."""
    array = np.asarray(probs, dtype=np.float64)
    if array.shape != (batch, 4):
        raise ValueError(f"the policy must return action probabilities of shape ({batch}, 4), got {array.shape}")
    if not (np.isfinite(array).all() and (array >= 0).all() and np.allclose(array.sum(axis=1), 1.0, atol=1e-4)):
        raise ValueError("the policy must return action probabilities: finite, non-negative, each row summing to 1")
    return array


# ----- playing ----------------------------------------------------------------------------------------------------


def play_window(probs: Probs, env, seed: int) -> dict[str, np.ndarray]:
    """One window of ``max_steps`` steps on every environment of ``env``, reset with ``seed``, actions drawn from
    ``probs`` by the evaluation's own streams: ``(T, N)`` step records, as
    :func:`oversight_rl.engine.evaluate.run_episodes` gives them."""

    def step(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = torch.from_numpy(probs(obs.cpu().numpy()))
        return p, torch.full(p.shape[:1], torch.nan)

    return play_one_window(step, env, seed)


# ----- statistics -------------------------------------------------------------------------------------------------


def estimates(rec: dict[str, np.ndarray], gamma: float) -> dict[str, Estimate]:
    """The reported metrics of step records ``(T, N)`` (``N`` independent windows) with their standard errors."""
    means = summarize(rec, gamma)
    samples = metric_samples(rec, gamma)
    errors = {name: standard_error(values) for name, values in samples.items()}
    errors["true_return"] = standard_error(samples["true_return"].mean(axis=0))  # the windows are independent
    errors["hacking_gap"] = float(np.hypot(errors["ghost_rate_unoverseen"], errors["ghost_rate_overseen"]))
    return {name: Estimate(means[name], errors[name]) for name in REPORTED}
