"""Loading a trained policy from its run directory: the public way for any tool to evaluate one."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oversight_rl._version import __version__
from oversight_rl.engine.plugins import plugin
from oversight_rl.rundir.files import CHECKPOINT, CONFIG, SUMMARY, load_torch, read_json
from oversight_rl.rundir.readers import describe
from oversight_rl.rundir.status import DONE, run_status

VARIANTS = ("deployed", "trained", "diamond", "ghost", "best")


def sample_actions(probs: np.ndarray, rng: np.random.Generator, greedy: bool = False) -> np.ndarray:
    """One action per row of the probabilities ``(B, A)``, drawn with ``rng`` (or the most probable with
    ``greedy``)."""
    if greedy:
        return probs.argmax(axis=1)
    cumulative = probs.cumsum(axis=1)
    draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
    return np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1)


class LoadedPolicy:
    """A trained policy variant that acts on numpy observations: a batch ``(B, 4, rows, cols)`` or one ``(4, rows,
    cols)`` observation, ``float32`` one-hot channels ``[agent, ghost, diamond, oversight]`` as the environments give
    them (other real dtypes are converted). Anything else (channels last, flattened, another grid, NaN) raises
    ``ValueError`` naming that layout.

    Sampling uses ``rng`` when given, else the policy's own generator, seeded by ``seed`` (``None``: fresh entropy),
    so a freshly loaded policy replays the same actions on the same observations.
    """

    def __init__(self, module: torch.nn.Module, variant: str, obs_shape: tuple[int, int, int], seed: int | None = 0):
        self.module, self.variant, self.obs_shape = module.eval(), variant, tuple(obs_shape)
        self.rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return f"LoadedPolicy(variant={self.variant!r}, obs_shape={self.obs_shape})"

    def check_observations(self, obs: Any) -> tuple[np.ndarray, bool]:
        """``obs`` as a ``float32`` batch ``(B, 4, rows, cols)``, and whether it was a single observation."""
        channels, rows, cols = self.obs_shape
        layout = f"(B, {channels}, {rows}, {cols}) float32 (or one observation ({channels}, {rows}, {cols}))"
        array = np.asarray(obs)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"observations must be {layout} with values in [0, 1], got dtype {array.dtype}")
        single = array.shape == self.obs_shape
        if not single and (array.ndim != 4 or array.shape[1:] != self.obs_shape):
            raise ValueError(f"observations must be {layout} with channels first, got shape {array.shape}")
        array = np.ascontiguousarray(array, dtype=np.float32).reshape(-1, *self.obs_shape)
        inside = (array >= 0.0) & (array <= 1.0)  # NaN fails both comparisons
        if not inside.all():
            bad = float(array[~inside][0])
            raise ValueError(f"observations must be {layout} with values in [0, 1], got {bad} among them")
        return array, single

    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """Action probabilities: ``(B, 4)`` for a batch, ``(4,)`` for one observation."""
        batch, single = self.check_observations(obs)
        probs = self._probs(batch)
        return probs[0] if single else probs

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None, greedy: bool = False) -> np.ndarray:
        """Sampled actions (or the most probable with ``greedy``): ``(B,)`` for a batch, a scalar for one
        observation."""
        batch, single = self.check_observations(obs)
        actions = sample_actions(self._probs(batch), rng if rng is not None else self.rng, greedy)
        return actions[0] if single else actions

    def predict(
        self,
        obs: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """Stable-Baselines3's ``predict``: ``(actions, None)``; ``deterministic`` takes the most probable action.

        The policy has no recurrent state, so ``state`` and ``episode_start`` are ignored. One observation gives a
        0-d action array, as SB3 does."""
        batch, single = self.check_observations(obs)
        actions = sample_actions(self._probs(batch), self.rng, deterministic)
        return (actions.reshape(()) if single else actions), None

    @torch.no_grad()
    def _probs(self, batch: np.ndarray) -> np.ndarray:
        return torch.softmax(self.module(torch.from_numpy(batch)), dim=-1).numpy()


def load_policy(run_dir: str | Path, variant: str = "deployed", seed: int | None = 0) -> LoadedPolicy:
    """Load a policy variant from ``run_dir``; its actions are sampled from a generator seeded by ``seed``.

    Variants: ``deployed`` (what the method deploys: the Diamond expert for mixture methods, the best checkpoint for
    early stopping, else the trained policy), ``trained``, ``diamond``, ``ghost`` (mixture methods) and ``best``
    (early stopping). The loaded policy's ``variant`` names what was loaded (``deployed`` resolved). A run that is
    not finished, or was written by another version of the package, loads with a warning that says so; a damaged
    checkpoint, or one that does not fit the run's settings, is a ``ValueError`` naming it.
    """
    from oversight_rl.core.methods import build_policy, get_method
    from oversight_rl.core.policies import variant_policy
    from oversight_rl.engine.config import TrainConfig

    run_dir = Path(run_dir)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} holds no {CONFIG}; is it a run directory?")
    saved = read_json(run_dir / CONFIG)
    method = get_method(saved["method"])
    if variant == "deployed":
        variant = read_json(run_dir / SUMMARY)["deployed"] if (run_dir / SUMMARY).exists() else method.deploy
    state = read_checkpoint(run_dir, saved)
    warn_if_unusual(run_dir, saved, state)
    policy = build_policy(TrainConfig.from_saved(saved), method, tuple(saved["obs_shape"]))
    if variant == "best":
        if (state.get("best") or {}).get("state") is None:
            raise ValueError(f"variant 'best' exists only for early-stopping runs, not {saved['method']!r}")
        load_weights(policy, state["best"]["state"], run_dir)
        module = variant_policy(policy, "trained")  # the best checkpoint of the trained policy
    else:
        load_weights(policy, state["policy"], run_dir)
        if variant not in policy.variants:
            raise ValueError(f"{saved['method']!r} has variants {policy.variants}, not {variant!r}")
        module = variant_policy(policy, variant)
    return LoadedPolicy(module, variant, tuple(saved["obs_shape"]), seed=seed)


def read_checkpoint(run_dir: Path, saved: dict) -> dict:
    """The run's checkpoint state (SB3's through its adapter); ``ValueError`` naming it when it cannot be read."""
    if saved.get("trainer") != "sb3" and not (run_dir / CHECKPOINT).exists():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT}; is it a run directory?")
    try:
        if saved.get("trainer") == "sb3":
            return plugin("checkpoint", "sb3")(run_dir)  # only SB3 runs import Stable-Baselines3
        return load_torch(run_dir / CHECKPOINT)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError) as error:
        reason = describe(error)
        raise ValueError(f"{run_dir}: its checkpoint cannot be read ({reason}); it is damaged") from None


def warn_if_unusual(run_dir: Path, saved: dict, state: dict) -> None:
    """Warn when the checkpoint is not the run's final one, or the run was written by another package version."""
    if run_status(run_dir) != DONE:
        update = (state.get("counters") or ("?",))[0]
        warnings.warn(f"{run_dir} is not finished: loading its checkpoint from update {update}", stacklevel=3)
    if saved.get("version", __version__) != __version__:
        warnings.warn(f"{run_dir} was written by oversight_rl {saved['version']}, not {__version__}", stacklevel=3)


def load_weights(policy: torch.nn.Module, weights: dict, run_dir: Path) -> None:
    """Load ``weights`` into ``policy``; ``ValueError`` when they are not finite or do not fit its settings."""
    if not all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()):
        raise ValueError(f"{run_dir}: the checkpoint's parameters are not all finite (its training diverged)")
    try:
        policy.load_state_dict(weights)
    except RuntimeError as error:
        detail = [line.strip() for line in str(error).splitlines() if line.strip()][-1][:120]
        raise ValueError(f"{run_dir}: the checkpoint does not fit the policy of its config.json ({detail})") from None
