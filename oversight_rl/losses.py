"""Losses: pure functions ``(batch, policy, coefs) -> (loss, metrics)``, side by side.

All three share one policy-gradient objective. With ``coefs.clip`` set it is PPO's clipped surrogate
``max(-A r, -A clip(r, 1-e, 1+e))`` with ``r = pi(a|s) / pi_old(a|s)``; without it, REINFORCE's ``-A log pi(a|s)``.
Each adds ``vf * 0.5 (V(s) - R)^2 - ent * H(pi(.|s))``, averaged over the samples a loss uses.

- :func:`policy_gradient_loss` uses every sample.
- :func:`filtered_loss` uses only the samples in ``batch.weights`` (episodes the overseer can verify).
- :func:`routed_loss` routes each sample's gradient by ``batch.routes`` and adds the gate's binary cross-entropy
  against the labels, ``gate * BCE(g, 1[Diamond])`` averaged over labeled samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from oversight_rl.labels import Route, route_masks
from oversight_rl.policies import ActorCritic, Trunk


class Batch(NamedTuple):
    """Flat training samples. ``trunk`` holds the rollout's own forward pass when it can be reused (REINFORCE)."""

    obs: torch.Tensor
    actions: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    weights: torch.Tensor  # 1.0 where a sample is used, 0.0 where a method discards it
    routes: torch.Tensor  # Route codes: where each sample's policy gradient may flow
    labels: torch.Tensor  # Route codes of the episode's label (BOTH when unlabeled): the gate's targets
    trunk: Trunk | None = None


@dataclass(frozen=True)
class LossCoefs:
    clip: float | None  # None: REINFORCE
    ent: float
    vf: float
    gate: float
    normalize_advantages: bool
    mean_over_used: bool = True  # False: divide by every sample, so discarded ones dilute the step (the paper's)


def _objective(
    logits: torch.Tensor, value: torch.Tensor, batch: Batch, coefs: LossCoefs
) -> tuple[torch.Tensor, dict[str, float]]:
    w = batch.weights
    denom = w.sum().clamp(min=1.0) if coefs.mean_over_used else torch.tensor(float(w.numel()))
    dist = torch.distributions.Categorical(logits=logits)
    logp = dist.log_prob(batch.actions)
    adv = batch.advantages
    if coefs.normalize_advantages:
        used = w > 0
        if used.sum() > 1:
            adv = (adv - adv[used].mean()) / (adv[used].std() + 1e-8)
    log_ratio = logp - batch.old_logp
    if coefs.clip is None:
        per_sample = -adv * logp
    else:
        ratio = log_ratio.exp()
        per_sample = torch.max(-adv * ratio, -adv * ratio.clamp(1 - coefs.clip, 1 + coefs.clip))
    policy_loss = (per_sample * w).sum() / denom
    value_loss = 0.5 * ((value - batch.returns).pow(2) * w).sum() / denom
    entropy = (dist.entropy() * w).sum() / denom
    loss = policy_loss + coefs.vf * value_loss - coefs.ent * entropy
    with torch.no_grad():
        metrics = {
            "losses/policy": policy_loss.item(),
            "losses/value": value_loss.item(),
            "losses/entropy": entropy.item(),
            "losses/approx_kl": (((log_ratio.exp() - 1) - log_ratio) * w).sum().item() / denom.item(),
        }
    return loss, metrics


def _trunk(batch: Batch, policy: ActorCritic) -> Trunk:
    return batch.trunk if batch.trunk is not None else policy.trunk(batch.obs)


def policy_gradient_loss(batch: Batch, policy: ActorCritic, coefs: LossCoefs) -> tuple[torch.Tensor, dict[str, float]]:
    """Plain policy gradient with a value baseline, on every sample."""
    trunk = _trunk(batch, policy)
    return _objective(policy.logits(trunk), trunk.value, batch._replace(weights=torch.ones_like(batch.weights)), coefs)


def filtered_loss(batch: Batch, policy: ActorCritic, coefs: LossCoefs) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy gradient on the samples ``batch.weights`` keeps; the rest contribute nothing."""
    trunk = _trunk(batch, policy)
    return _objective(policy.logits(trunk), trunk.value, batch, coefs)


def routed_loss(batch: Batch, policy: ActorCritic, coefs: LossCoefs) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy gradient with each sample routed by ``batch.routes``, plus the gate cross-entropy on ``batch.labels``."""
    trunk = _trunk(batch, policy)
    loss, metrics = _objective(policy.logits(trunk, route_masks(batch.routes)), trunk.value, batch, coefs)
    labeled = batch.labels != Route.BOTH
    if coefs.gate > 0 and trunk.gate_logit is not None and labeled.any():
        target = (batch.labels[labeled] == Route.DIAMOND).float()
        gate_loss = F.binary_cross_entropy_with_logits(trunk.gate_logit[labeled], target)
        loss = loss + coefs.gate * gate_loss
        metrics["losses/gate"] = gate_loss.item()
    return loss, metrics


LOSSES = {"pg": policy_gradient_loss, "filtered": filtered_loss, "routed": routed_loss}
