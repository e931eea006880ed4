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

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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


FILTERING = ("tuned", "paper", "finished_only")
"""How the filtering method keeps and averages its samples (:attr:`oversight_rl.config.TrainConfig.filtering`)."""


@dataclass(frozen=True)
class LossSetting:
    """The training setting one field of :class:`LossCoefs` is taken from."""

    name: str  # the TrainConfig field (--flag), and RoutedPPO's keyword unless PPO has one of its own for it
    allowed: str = "any value"  # what error messages say the setting must be
    allows: Callable[[Any], bool] = lambda value: True
    coef: Callable[[Any], Any] = lambda value: value  # the coefficient the setting's value gives


def from_setting(name: str, allowed: str = "any value", allows=lambda value: True, coef=lambda value: value, **kwargs):
    """A :class:`LossCoefs` field taken from the training setting ``name`` (``kwargs`` go to ``dataclasses.field``)."""
    return field(metadata={"setting": LossSetting(name, allowed, allows, coef)}, **kwargs)


def at_least_zero(value) -> bool:
    return value >= 0


@dataclass(frozen=True)
class LossCoefs:
    """The coefficients of a loss. Each field is declared here once, with the training setting it comes from, the
    values that setting allows and how the coefficient follows from it. :func:`loss_coefs` builds them for both
    trainers, and the checks of the settings (:meth:`oversight_rl.config.TrainConfig.validate`, RoutedPPO's
    arguments) read them from here, so a new coefficient is a field here plus the TrainConfig field that puts its
    setting on the command line."""

    clip: float | None = from_setting("clip_coef", "> 0", lambda value: value > 0)  # None: REINFORCE
    ent: float = from_setting("ent_coef", ">= 0", at_least_zero)
    vf: float = from_setting("vf_coef", ">= 0", at_least_zero)
    gate: float = from_setting("gate_coef", ">= 0", at_least_zero)  # 0 for a method that does not train its gate
    normalize_advantages: bool = from_setting("normalize_advantages")
    # False (filtering "paper"): divide by every sample, so discarded ones dilute the step (the paper's)
    mean_over_used: bool = from_setting(
        "filtering",
        f"one of {', '.join(FILTERING)}",
        lambda value: value in FILTERING,
        lambda value: value != "paper",
        default=True,
    )


COEF_SETTINGS: dict[str, LossSetting] = {f.name: f.metadata["setting"] for f in dataclasses.fields(LossCoefs)}
"""The setting each field of :class:`LossCoefs` is taken from, by field name."""
LOSS_SETTINGS: dict[str, LossSetting] = {s.name: s for s in COEF_SETTINGS.values()}
"""The same settings by their own names: the TrainConfig fields (and RoutedPPO keywords) that set the loss."""


def loss_coefs(settings: Mapping[str, Any], gate_loss: bool = True, clipped: bool = True) -> LossCoefs:
    """The coefficients that training ``settings`` give (a value for each name of :data:`LOSS_SETTINGS`): the one
    function both trainers build theirs with. ``gate_loss`` False (a method that does not train its gate) zeroes the
    gate's weight; ``clipped`` False (REINFORCE) drops the PPO clip."""
    coefs = LossCoefs(**{name: s.coef(settings[s.name]) for name, s in COEF_SETTINGS.items()})
    return dataclasses.replace(coefs, gate=coefs.gate if gate_loss else 0.0, clip=coefs.clip if clipped else None)


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
