"""Losses: pure functions ``(batch, policy, coefs) -> (loss, metrics)``, side by side, for one agent.

Each is written for one agent's samples and has no data-dependent shapes or branches (masks, not indexing), so a
population trainer maps it over many agents with ``torch.func.vmap``. Metrics are detached 0-dim tensors.

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
    valid: torch.Tensor | None = None  # 1.0 inside the budget (None: every sample), for a last, shorter window
    trunk: Trunk | None = None


@dataclass(frozen=True)
class LossCoefs:
    clip: float | None  # None: REINFORCE
    ent: float
    vf: float
    gate: float
    normalize_advantages: bool
    mean_over_used: bool = True  # False: divide by every sample, so discarded ones dilute the step (the paper's)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` holds; NaN where it holds nowhere."""
    count = mask.sum()
    return torch.where(count > 0, (x * mask).sum() / count.clamp(min=1), torch.nan)


def normalized(adv: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
    """Advantages standardized by the mean and (unbiased) std of the used samples; unchanged with fewer than two."""
    count = used.sum()
    mean = (adv * used).sum() / count.clamp(min=1)
    std = (((adv - mean) * used).pow(2).sum() / (count - 1).clamp(min=1)).sqrt()
    return torch.where(count > 1, (adv - mean) / (std + 1e-8), adv)


def _objective(
    logits: torch.Tensor, value: torch.Tensor, batch: Batch, coefs: LossCoefs
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    w = batch.weights if batch.valid is None else batch.weights * batch.valid
    everything = w.new_tensor(float(w.shape[-1])) if batch.valid is None else batch.valid.sum()
    denom = w.sum().clamp(min=1.0) if coefs.mean_over_used else everything
    log_probs = torch.log_softmax(logits, dim=-1)
    logp = log_probs.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    entropy_per_sample = -(log_probs.exp() * log_probs).sum(-1)
    adv = normalized(batch.advantages, w > 0) if coefs.normalize_advantages else batch.advantages
    log_ratio = logp - batch.old_logp
    if coefs.clip is None:
        per_sample = -adv * logp
    else:
        ratio = log_ratio.exp()
        per_sample = torch.max(-adv * ratio, -adv * ratio.clamp(1 - coefs.clip, 1 + coefs.clip))
    policy_loss = (per_sample * w).sum() / denom
    value_loss = 0.5 * ((value - batch.returns).pow(2) * w).sum() / denom
    entropy = (entropy_per_sample * w).sum() / denom
    loss = policy_loss + coefs.vf * value_loss - coefs.ent * entropy
    metrics = {
        "losses/policy": policy_loss,
        "losses/value": value_loss,
        "losses/entropy": entropy,
        "losses/approx_kl": (((log_ratio.exp() - 1) - log_ratio) * w).sum() / denom,
    }
    return loss, {key: value.detach() for key, value in metrics.items()}


def _trunk(batch: Batch, policy: ActorCritic) -> Trunk:
    return batch.trunk if batch.trunk is not None else policy.trunk(batch.obs)


def policy_gradient_loss(
    batch: Batch, policy: ActorCritic, coefs: LossCoefs
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain policy gradient with a value baseline, on every sample."""
    trunk = _trunk(batch, policy)
    return _objective(policy.logits(trunk), trunk.value, batch._replace(weights=torch.ones_like(batch.weights)), coefs)


def filtered_loss(batch: Batch, policy: ActorCritic, coefs: LossCoefs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Policy gradient on the samples ``batch.weights`` keeps; the rest contribute nothing."""
    trunk = _trunk(batch, policy)
    return _objective(policy.logits(trunk), trunk.value, batch, coefs)


def routed_loss(batch: Batch, policy: ActorCritic, coefs: LossCoefs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Policy gradient with each sample routed by ``batch.routes``, plus the gate cross-entropy on ``batch.labels``."""
    trunk = _trunk(batch, policy)
    loss, metrics = _objective(policy.logits(trunk, route_masks(batch.routes)), trunk.value, batch, coefs)
    if coefs.gate > 0 and trunk.gate_logit is not None:
        labeled = batch.labels != Route.BOTH
        target = (batch.labels == Route.DIAMOND).to(trunk.gate_logit.dtype)
        per_sample = F.binary_cross_entropy_with_logits(trunk.gate_logit, target, reduction="none")
        gate_loss = masked_mean(per_sample, labeled)
        loss = loss + coefs.gate * torch.nan_to_num(gate_loss)  # no labeled sample: no gate loss
        metrics["losses/gate"] = gate_loss.detach()
    return loss, metrics


LOSSES = {"pg": policy_gradient_loss, "filtered": filtered_loss, "routed": routed_loss}
