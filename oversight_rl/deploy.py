"""Loading a trained policy from its run directory: the public way for any tool to evaluate one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oversight_rl.rundir import CHECKPOINT, CONFIG, SUMMARY, read_json

VARIANTS = ("deployed", "trained", "diamond", "ghost", "best")


class LoadedPolicy:
    """A trained policy variant that acts on numpy batches of observations ``(B, 4, rows, cols)``."""

    def __init__(self, module: torch.nn.Module, variant: str):
        self.module, self.variant = module.eval(), variant

    @torch.no_grad()
    def action_probs(self, obs: np.ndarray) -> np.ndarray:
        """Action probabilities, shape ``(B, 4)``."""
        logits = self.module(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        return torch.softmax(logits, dim=-1).numpy()

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None, greedy: bool = False) -> np.ndarray:
        """Sampled actions (or the most probable with ``greedy``), shape ``(B,)``."""
        probs = self.action_probs(obs)
        if greedy:
            return probs.argmax(axis=1)
        rng = rng if rng is not None else np.random.default_rng()
        cumulative = probs.cumsum(axis=1)
        draws = rng.random((len(probs), 1)) * cumulative[:, -1:]
        return (draws > cumulative).sum(axis=1)


def load_policy(run_dir: str | Path, variant: str = "deployed") -> LoadedPolicy:
    """Load a policy variant from ``run_dir``.

    Variants: ``deployed`` (what the method deploys: the Diamond expert for mixture methods, the best checkpoint for
    early stopping, else the trained policy), ``trained``, ``diamond``, ``ghost`` (mixture methods) and ``best``
    (early stopping).
    """
    from oversight_rl.config import TrainConfig
    from oversight_rl.methods import get_method
    from oversight_rl.policies import variant_policy
    from oversight_rl.train import build_policy

    run_dir = Path(run_dir)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir} holds no {CONFIG}; is it a run directory?")
    saved = read_json(run_dir / CONFIG)
    method = get_method(saved["method"])
    if variant == "deployed":
        variant = read_json(run_dir / SUMMARY)["deployed"] if (run_dir / SUMMARY).exists() else method.deploy
    if saved.get("trainer") == "sb3":
        from oversight_rl.sb3.train import checkpoint_state  # only SB3 runs import Stable-Baselines3

        state = checkpoint_state(run_dir)
    elif (run_dir / CHECKPOINT).exists():
        state = torch.load(run_dir / CHECKPOINT, weights_only=False, map_location="cpu")
    else:
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT}; is it a run directory?")
    cfg = TrainConfig.from_saved(saved)
    policy = build_policy(cfg, method, tuple(saved["obs_shape"]))
    if variant == "best":
        if state["best"]["state"] is None:
            raise ValueError(f"variant 'best' exists only for early-stopping runs, not {saved['method']!r}")
        policy.load_state_dict(state["best"]["state"])
        variant = "trained"
    else:
        policy.load_state_dict(state["policy"])
    if variant not in policy.variants:
        raise ValueError(f"{saved['method']!r} has variants {policy.variants}, not {variant!r}")
    return LoadedPolicy(variant_policy(policy, variant), variant)
