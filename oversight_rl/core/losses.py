"""Losses: pure functions ``(batch, policy, coefs) -> (loss, metrics)``, side by side, for one agent.

Each is written for one agent's samples and has no data-dependent shapes or branches (masks, not indexing), so a
population trainer maps it over many agents with ``torch.func.vmap``. Metrics are detached 0-dim tensors.

All three share one policy-gradient objective. With ``coefs.clip`` set it is PPO's clipped surrogate
``max(-A r, -A clip(r, 1-e, 1+e))`` with ``r = pi(a|s) / pi_old(a|s)``; without it, REINFORCE's ``-A log pi(a|s)``.
Each adds ``vf * 0.5 (V(s) - R)^2 - ent * H(pi(.|s))``, averaged over the samples a loss uses.

- :func:`policy_gradient_loss` uses every sample.
- :func:`filtered_loss` uses only the samples in ``batch.weights`` (episodes the overseer can verify).
- :func:`routed_loss` routes each sample's gradient by ``batch.routes`` and adds the gate's binary cross-entropy
  against the labels, ``gate * BCE(g, 1[Diamond])`` averaged over labeled samples. Its advantages follow
  ``coefs.routed_advantage`` (:func:`routed_advantages`): a value baseline is unbiased only on samples that were not
  chosen by their episode's outcome.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from oversight_rl.core.labels import Route, RouteMasks, route_masks
from oversight_rl.core.policies import ActorCritic, Trunk


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
    mc_returns: torch.Tensor | None = None  # return-to-go with no baseline (see routed_advantages); None: not needed
    watched: torch.Tensor | None = None  # bool: the sample's episode has an overseen terminal (see routed_advantages)
    valid: torch.Tensor | None = None  # 1.0 inside the budget (None: every sample), for a last, shorter window
    trunk: Trunk | None = None


FILTERING = ("tuned", "paper", "finished_only")
"""How the filtering method keeps and averages its samples
(:attr:`oversight_rl.engine.config.TrainConfig.filtering`)."""
ROUTED_ADVANTAGES = ("shared_baseline", "routed_no_baseline", "no_baseline", "unwatched_baseline", "expert_returns")
"""The routed loss's advantage estimators (:attr:`oversight_rl.engine.config.TrainConfig.routed_advantage`)."""


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
    trainers, and the checks of the settings (:meth:`oversight_rl.engine.config.TrainConfig.validate`, RoutedPPO's
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
    routed_advantage: str = from_setting(
        "routed_advantage",
        f"one of {', '.join(ROUTED_ADVANTAGES)}",
        lambda value: value in ROUTED_ADVANTAGES,
        default="shared_baseline",
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


def normalized(adv: torch.Tensor, used: torch.Tensor, no_baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Advantages standardized by the mean and (unbiased) std of the used samples; unchanged with fewer than two.

    Subtracting the mean is a constant baseline, so the samples of ``no_baseline`` are only scaled: they keep their
    sign, and the mean is that of the others (the std is that of every used sample after centering).
    """
    count = used.sum()
    if no_baseline is None:
        mean = (adv * used).sum() / count.clamp(min=1)
        std = (((adv - mean) * used).pow(2).sum() / (count - 1).clamp(min=1)).sqrt()
        return torch.where(count > 1, (adv - mean) / (std + 1e-8), adv)
    centered = used & ~no_baseline
    mean = (adv * centered).sum() / centered.sum().clamp(min=1)
    shifted = torch.where(no_baseline, adv, adv - mean)
    spread = shifted - (shifted * used).sum() / count.clamp(min=1)
    std = ((spread * used).pow(2).sum() / (count - 1).clamp(min=1)).sqrt()
    return torch.where(count > 1, shifted / (std + 1e-8), adv)


def routed_advantages(batch: Batch, estimator: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The advantage each sample's routed policy gradient uses, and the samples whose advantage has no baseline
    (None: every sample has one). ``batch.advantages`` carry the shared value baseline (``G - V(s)``, or GAE);
    ``batch.mc_returns`` are the Monte-Carlo returns-to-go ``G`` (bootstrapped only where the window cuts an episode).

    Why the choice matters: a routed sample is chosen by its episode's outcome, and a baseline cancels only in an
    expectation over every action at ``s``. On the Diamond-routed samples, ``E[b(s) grad log pi(a|s) | s, Diamond]
    = b(s) grad P(Diamond | s)`` (as a gradient of the action at ``s`` alone), so a baseline ``b`` adds
    ``-b(s) grad P(Diamond | s)``: it pushes the Diamond expert away from the Diamond, and the Ghost route mirrors
    it. Any nonzero baseline does, a constant too, advantage normalization's mean included. Unlabeled samples are
    chosen by outcome as well wherever a terminal is watched (the terminal reached was not). A baseline is unbiased
    only on samples whose route could not have depended on the outcome: episodes with no overseen terminal, routed
    to both experts wherever they end. Elsewhere it would have to be computed and added back, which needs each
    action's probability of each outcome, or be applied to every sample with the route's own return
    (``expert_returns``), so that no sample is chosen at all.

    - ``shared_baseline`` (the paper's): the shared baseline on every sample. Biased as above.
    - ``routed_no_baseline``: labeled (routed) samples use ``G``; unlabeled ones keep the baseline. Each expert
      keeps a bias, ``+b(s) grad P(labeled | s)``, toward whichever terminal is watched: in an episode where only
      the Ghost is watched, the Diamond expert is pushed away from the Diamond as under the paper's.
    - ``no_baseline``: every sample uses ``G``. Each expert follows the expected policy gradient of its own
      objective, the discounted training reward of the episodes it learns from (for the Diamond expert, +1 at any
      terminal but a watched Ghost, which is worth 0), at the price of the most variance.
    - ``unwatched_baseline``: the baseline on the samples of episodes with no overseen terminal (``batch.watched``
      false), ``G`` on the others. Its expectation is ``no_baseline``'s exactly, with the baseline's variance
      reduction on every episode that nobody watches (81% of them at 10% oversight, 98% at 1%).
    - ``expert_returns`` is not a per-sample choice: see :func:`expert_return_terms`.
    """
    if estimator == "shared_baseline":
        return batch.advantages, None
    if batch.mc_returns is None:
        raise ValueError(f"routed_advantage {estimator!r} needs the batch's mc_returns (the Monte-Carlo returns)")
    if estimator == "routed_no_baseline":
        no_baseline = batch.routes != Route.BOTH
    elif estimator == "no_baseline":
        no_baseline = torch.ones_like(batch.routes, dtype=torch.bool)
    elif batch.watched is None:
        raise ValueError(f"routed_advantage {estimator!r} needs the batch's watched (the episodes' oversight)")
    else:
        no_baseline = batch.watched
    return torch.where(no_baseline, batch.mc_returns, batch.advantages), no_baseline


class PolicyTerm(NamedTuple):
    """One policy-gradient term of a loss: the logits it differentiates (routed as it wants) and its advantages."""

    logits: torch.Tensor
    advantages: torch.Tensor
    no_baseline: torch.Tensor | None = None  # samples whose advantage normalization must not center


def _objective(
    logits: torch.Tensor, value: torch.Tensor, batch: Batch, coefs: LossCoefs, terms: list[PolicyTerm] | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss from ``logits`` (entropy, KL) and ``value``, with the policy-gradient ``terms`` (by default one:
    ``logits`` with ``batch.advantages``)."""
    w = batch.weights if batch.valid is None else batch.weights * batch.valid
    everything = w.new_tensor(float(w.shape[-1])) if batch.valid is None else batch.valid.sum()
    denom = w.sum().clamp(min=1.0) if coefs.mean_over_used else everything
    log_probs = torch.log_softmax(logits, dim=-1)
    logp = log_probs.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)
    entropy_per_sample = -(log_probs.exp() * log_probs).sum(-1)
    log_ratio = None
    sums = []
    for term in [PolicyTerm(logits, batch.advantages)] if terms is None else terms:
        own = term.logits is logits  # then it shares this pass's log-probabilities (and their rounding)
        sums.append(_policy_term(logp if own else taken_logp(term.logits, batch), term, batch, coefs, w))
        log_ratio = sums[-1][1] if own else log_ratio
    log_ratio = logp - batch.old_logp if log_ratio is None else log_ratio
    policy_loss = sums[0][0] if len(sums) == 1 else torch.stack([total for total, _ in sums]).sum()
    policy_loss = policy_loss / denom
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


def taken_logp(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Log-probability of each sample's action."""
    return torch.log_softmax(logits, dim=-1).gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)


def _policy_term(
    logp: torch.Tensor, term: PolicyTerm, batch: Batch, coefs: LossCoefs, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (REINFORCE's ``-A log pi`` without a clip) of one term (``logp`` from its logits),
    summed over the samples; and its log-ratio to the rollout's policy."""
    adv = normalized(term.advantages, w > 0, term.no_baseline) if coefs.normalize_advantages else term.advantages
    log_ratio = logp - batch.old_logp
    if coefs.clip is None:
        per_sample = -adv * logp
    else:
        ratio = log_ratio.exp()
        per_sample = torch.max(-adv * ratio, -adv * ratio.clamp(1 - coefs.clip, 1 + coefs.clip))
    return (per_sample * w).sum(), log_ratio


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
    """Policy gradient with each sample routed by ``batch.routes`` and its advantage by ``coefs.routed_advantage``
    (:func:`routed_advantages`, :func:`expert_return_terms`), plus the gate cross-entropy on ``batch.labels``."""
    trunk = _trunk(batch, policy)
    logits = policy.logits(trunk, route_masks(batch.routes))
    if coefs.routed_advantage == "expert_returns":
        terms = expert_return_terms(batch, policy, trunk)
    else:
        terms = [PolicyTerm(logits, *routed_advantages(batch, coefs.routed_advantage))]
    loss, metrics = _objective(logits, trunk.value, batch, coefs, terms)
    if coefs.gate > 0 and trunk.gate_logit is not None:
        labeled = batch.labels != Route.BOTH
        target = (batch.labels == Route.DIAMOND).to(trunk.gate_logit.dtype)
        per_sample = F.binary_cross_entropy_with_logits(trunk.gate_logit, target, reduction="none")
        gate_loss = masked_mean(per_sample, labeled)
        loss = loss + coefs.gate * torch.nan_to_num(gate_loss)  # no labeled sample: no gate loss
        metrics["losses/gate"] = gate_loss.detach()
    return loss, metrics


def expert_return_terms(batch: Batch, policy: ActorCritic, trunk: Trunk) -> list[PolicyTerm]:
    """``expert_returns``: routing's objective, with the baseline on every sample. Each part of the mixture learns
    from every sample, with the return of the episodes routing lets it learn from (0 on the others) minus the
    shared value baseline: the Diamond expert ``G 1[route != Ghost] - V(s)``, the Ghost expert ``G 1[route !=
    Diamond] - V(s)``, the gate ``G 1[route = both] - V(s)``, the output layer ``G - V(s)`` (the batch's own
    advantages). No sample is chosen by its outcome, so the baseline cancels in expectation and each part follows
    the expected gradient of the same objective as under ``no_baseline``; but a labeled episode reaches the other
    expert too, through ``-V(s)`` alone: it tells the Diamond expert that a watched Ghost was worth nothing, where
    routing's gradient mask tells it nothing."""
    if batch.mc_returns is None:
        raise ValueError("routed_advantage 'expert_returns' needs the batch's mc_returns (the Monte-Carlo returns)")
    if trunk.gate_logit is None:
        raise ValueError("routed_advantage 'expert_returns' needs a mixture policy (experts and a gate)")
    values = batch.returns - batch.advantages  # returns are advantages + V(s) under GAE and REINFORCE alike
    everyone, no_one = torch.ones_like(batch.routes, dtype=torch.bool), torch.zeros_like(batch.routes, dtype=torch.bool)

    def part(diamond, ghost, gate, head, learns_from) -> PolicyTerm:
        logits = policy.logits(trunk, RouteMasks(diamond, ghost, gate, head))
        return PolicyTerm(logits, torch.where(learns_from, batch.mc_returns, 0.0) - values)

    return [
        part(everyone, no_one, no_one, no_one, batch.routes != Route.GHOST),
        part(no_one, everyone, no_one, no_one, batch.routes != Route.DIAMOND),
        part(no_one, no_one, everyone, no_one, batch.routes == Route.BOTH),
        PolicyTerm(policy.logits(trunk, RouteMasks(no_one, no_one, no_one, everyone)), batch.advantages),
    ]


LOSSES = {"pg": policy_gradient_loss, "filtered": filtered_loss, "routed": routed_loss}
