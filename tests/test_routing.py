"""Where the gradient of each loss flows: routing by label, the gate's cross-entropy, steering, filtering, and the
policy-gradient objective computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from oversight_rl.core.labels import Route, route_masks
from oversight_rl.core.losses import Batch, LossCoefs, filtered_loss, policy_gradient_loss, routed_loss
from oversight_rl.core.methods import METHODS
from oversight_rl.core.policies import MoEPolicy, SingleExpertPolicy, SteeredPolicy, Trunk
from oversight_rl.engine.collect import Rollout
from oversight_rl.engine.trainer import build_batch

OBS_DIM = 4 * 5 * 5
GROUPS = ("diamond", "ghost", "gate_net", "head", "critic")
D, G, B = Route.DIAMOND, Route.GHOST, Route.BOTH


def moe(seed: int = 0, **kwargs) -> MoEPolicy:
    torch.manual_seed(seed)
    return MoEPolicy(OBS_DIM, width=8, depth=2, **kwargs).double()


def coefs(clip: float | None = 0.2, gate: float = 0.0, normalize: bool = False, mean_over_used: bool = True):
    return LossCoefs(
        clip=clip, ent=0.01, vf=0.5, gate=gate, normalize_advantages=normalize, mean_over_used=mean_over_used
    )


def make_batch(policy, obs: torch.Tensor, routes, labels=None, seed: int = 0, weights=None) -> Batch:
    """Random actions, advantages and returns; ``old_logp`` is the current policy's, slightly perturbed."""
    n = obs.shape[0]
    gen = torch.Generator().manual_seed(seed)
    routes = torch.as_tensor(routes, dtype=torch.int64)
    obs = obs.double()
    actions = torch.randint(0, 4, (n,), generator=gen)
    with torch.no_grad():
        logp = torch.distributions.Categorical(logits=policy(obs)).log_prob(actions)
    return Batch(
        obs=obs,
        actions=actions,
        old_logp=logp + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64),
        advantages=torch.randn(n, generator=gen, dtype=torch.float64),
        returns=torch.randn(n, generator=gen, dtype=torch.float64),
        weights=torch.ones(n, dtype=torch.float64) if weights is None else torch.as_tensor(weights).double(),
        routes=routes,
        labels=routes.clone() if labels is None else torch.as_tensor(labels, dtype=torch.int64),
    )


def grads(policy: torch.nn.Module, loss: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Gradient of ``loss`` for every parameter, grouped by submodule (a parameter left out of the graph gets 0)."""
    policy.zero_grad(set_to_none=True)
    loss.backward()
    out: dict[str, list[torch.Tensor]] = {}
    for name, param in policy.named_parameters():
        grad = torch.zeros_like(param) if param.grad is None else param.grad.clone()
        out.setdefault(name.split(".")[0], []).append(grad)
    return out


def norm(group: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(g.pow(2).sum()) for g in group))


def zero(group: list[torch.Tensor]) -> bool:
    return all(bool((g == 0).all()) for g in group)


def assert_flow(g: dict, nonzero: tuple[str, ...], exactly_zero: tuple[str, ...]) -> None:
    for name in nonzero:
        assert norm(g[name]) > 0, f"{name} should receive gradient"
    for name in exactly_zero:
        assert zero(g[name]), f"{name} should receive exactly zero gradient, got norm {norm(g[name])}"


# ----------------------------------------------------------------------------------------------------------------
# routed_loss on batches routed all one way
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [0.2, None], ids=["ppo", "reinforce"])
@pytest.mark.parametrize(
    ("route", "nonzero", "exactly_zero"),
    [
        (D, ("diamond", "head", "critic"), ("ghost", "gate_net")),
        (G, ("ghost", "head", "critic"), ("diamond", "gate_net")),
        (B, ("diamond", "ghost", "gate_net", "head", "critic"), ()),
    ],
    ids=["diamond", "ghost", "both"],
)
def test_routed_loss_reaches_only_the_routed_expert(obs_batch, clip, route, nonzero, exactly_zero):
    policy = moe()
    batch = make_batch(policy, obs_batch, [route] * len(obs_batch))
    loss, _ = routed_loss(batch, policy, coefs(clip=clip, gate=0.0))
    assert_flow(grads(policy, loss), nonzero, exactly_zero)


@pytest.mark.parametrize(("label", "other"), [(D, "ghost"), (G, "diamond")], ids=["diamond", "ghost"])
def test_gate_cross_entropy_trains_the_gate_but_not_the_other_expert(obs_batch, label, other):
    policy = moe()
    batch = make_batch(policy, obs_batch, [label] * len(obs_batch))
    loss, metrics = routed_loss(batch, policy, coefs(gate=0.1))
    g = grads(policy, loss)
    assert "losses/gate" in metrics
    assert norm(g["gate_net"]) > 0
    assert zero(g[other])

    # The gate's gradient is the cross-entropy's alone: the routed policy loss adds nothing to it.
    target = torch.full((len(obs_batch),), float(label == D), dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(policy.trunk(batch.obs).gate_logit, target)
    expected = grads(policy, 0.1 * bce)["gate_net"]
    for got, want in zip(g["gate_net"], expected, strict=True):
        torch.testing.assert_close(got, want)


def test_gate_cross_entropy_uses_labeled_samples_only(obs_batch):
    """Unlabeled samples (label BOTH) are no target of the gate: the loss equals BCE over the labeled ones."""
    policy = moe()
    labels = [D, G, B, B, D, B, G, B, D, D, B, G]
    batch = make_batch(policy, obs_batch, [B] * 12, labels=labels)
    with_gate, metrics = routed_loss(batch, policy, coefs(gate=0.5))
    without, _ = routed_loss(batch, policy, coefs(gate=0.0))
    labeled = torch.tensor([lab != B for lab in labels])
    target = torch.tensor([float(lab == D) for lab in labels], dtype=torch.float64)[labeled]
    logit = policy.trunk(batch.obs).gate_logit[labeled]
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
    torch.testing.assert_close(with_gate - without, 0.5 * bce)
    assert metrics["losses/gate"] == pytest.approx(bce.item())


def test_no_gate_loss_without_labels(obs_batch):
    policy = moe()
    batch = make_batch(policy, obs_batch, [B] * 12)
    with_gate, metrics = routed_loss(batch, policy, coefs(gate=0.5))
    without, _ = routed_loss(batch, policy, coefs(gate=0.0))
    assert torch.isnan(metrics["losses/gate"])  # no labeled sample: the metric is undefined, the loss adds nothing
    torch.testing.assert_close(with_gate, without)


# ----------------------------------------------------------------------------------------------------------------
# Mixed batches: a sample routed to one expert contributes nothing to the other
# ----------------------------------------------------------------------------------------------------------------

MIXED = [D, G, B, D, D, G, B, D, G, B, D, G]


@pytest.mark.parametrize("mean_over_used", [True, False])
@pytest.mark.parametrize(("expert", "excluded"), [("ghost", D), ("diamond", G)], ids=["ghost", "diamond"])
def test_mixed_batch_expert_gradient_comes_from_its_samples_only(obs_batch, expert, excluded, mean_over_used):
    policy = moe()
    batch = make_batch(policy, obs_batch, MIXED)
    c = coefs(gate=0.1, mean_over_used=mean_over_used)
    full = grads(policy, routed_loss(batch, policy, c)[0])[expert]

    keep = batch.routes != excluded
    sub = Batch(*(None if field is None else field[keep] for field in batch[:-2]))
    only_kept = grads(policy, routed_loss(sub, policy, c)[0])[expert]
    # Both losses are means; as sums over samples they must agree.
    scale = keep.sum().item() / len(keep)
    for got, want in zip(full, only_kept, strict=True):
        torch.testing.assert_close(got, want * scale, rtol=1e-10, atol=1e-12)
    assert norm(full) > 0


def test_mixed_batch_changing_diamond_samples_leaves_ghost_gradient_unchanged(obs_batch):
    """Whatever a Diamond-routed sample's action, advantage or return, the Ghost expert's gradient is the same."""
    policy = moe()
    batch = make_batch(policy, obs_batch, MIXED)
    c = coefs(gate=0.1)
    before = grads(policy, routed_loss(batch, policy, c)[0])
    is_d = batch.routes == D
    changed = batch._replace(
        actions=torch.where(is_d, (batch.actions + 1) % 4, batch.actions),
        advantages=torch.where(is_d, batch.advantages * 7.0 - 3.0, batch.advantages),
        old_logp=torch.where(is_d, batch.old_logp - 0.1, batch.old_logp),
    )
    after = grads(policy, routed_loss(changed, policy, c)[0])
    for got, want in zip(after["ghost"], before["ghost"], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert norm([a - b for a, b in zip(after["diamond"], before["diamond"], strict=True)]) > 0


def test_no_routing_semantics_every_part_learns(obs_batch):
    """no_routing: routes are all BOTH while the labels stay set; every part of the mixture gets gradient."""
    policy = moe()
    batch = make_batch(policy, obs_batch, [B] * 12, labels=MIXED)
    loss, metrics = routed_loss(batch, policy, coefs(gate=0.1))
    assert "losses/gate" in metrics
    assert_flow(grads(policy, loss), GROUPS, ())


def test_routing_matches_an_explicit_mixture():
    """Routing changes where gradient flows, never the forward value: routed logits equal the plain mixture."""
    policy = moe()
    obs = torch.randn(6, OBS_DIM, dtype=torch.float64).abs()

    trunk = policy.trunk(obs)
    diamond, ghost = trunk.experts
    g = torch.sigmoid(trunk.gate_logit).unsqueeze(-1)
    expected = policy.head(g * diamond + (1 - g) * ghost)
    routed = policy.logits(trunk, route_masks(torch.tensor([D, G, B, D, G, B])))
    torch.testing.assert_close(routed, expected)
    torch.testing.assert_close(policy.logits(trunk), expected)


# ----------------------------------------------------------------------------------------------------------------
# build_batch: the routes and weights each method hands the loss
# ----------------------------------------------------------------------------------------------------------------


def hand_rollout() -> Rollout:
    """T=3, one agent, N=4. env0: labeled Diamond at t=1, then unfinished. env1: unlabeled Ghost at t=0, labeled
    Ghost at t=2.
    env2: time-out at t=2. env3: unlabeled Diamond at t=2."""
    dones = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 1, 1]], dtype=torch.bool)
    terminal = torch.tensor([[0, 2, 0, 0], [1, 0, 0, 0], [0, 2, 0, 1]], dtype=torch.int8)
    labeled = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    return one_agent_rollout(dones, terminal, labeled)


def one_agent_rollout(dones: torch.Tensor, terminal: torch.Tensor, labeled: torch.Tensor) -> Rollout:
    """A rollout of one agent with the given (T, N) episode ends, terminals (2: the Ghost) and labels, zeros
    elsewhere."""
    t, n = dones.shape
    one_agent = lambda x: x.unsqueeze(1)  # noqa: E731  (T, S=1, N)
    return Rollout(
        obs=torch.zeros(t, 1, n, 4, 5, 5),
        actions=torch.zeros(t, 1, n, dtype=torch.long),
        logp=torch.zeros(t, 1, n),
        values=torch.zeros(t, 1, n),
        dones=one_agent(dones),
        terminal=one_agent(terminal),
        labeled=one_agent(labeled),
        ghost_overseen=one_agent(labeled & (terminal == 2)),
        next_value=torch.zeros(1, n),
        trunk=None,
    )


# Flattened time-major (t * N + n) expectations for hand_rollout.
HAND_LABELS = [D, B, B, B, D, G, B, B, B, G, B, B]
HAND_VERIFIED = [1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0]  # labeled or timed out
HAND_UNFINISHED = [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]


@pytest.mark.parametrize("method", ["routing", "constant_gate"])
def test_build_batch_routes_by_label_for_routing_methods(tiny_cfg, method):
    batch = build_batch(hand_rollout(), METHODS[method], tiny_cfg(method=method))
    assert batch.labels.tolist() == [HAND_LABELS]
    assert batch.routes.tolist() == [HAND_LABELS]
    assert batch.weights.tolist() == [[1.0] * 12]


def test_build_batch_no_routing_keeps_labels_but_routes_everything_to_both(tiny_cfg):
    batch = build_batch(hand_rollout(), METHODS["no_routing"], tiny_cfg(method="no_routing"))
    assert batch.labels.tolist() == [HAND_LABELS]
    assert batch.routes.tolist() == [[B] * 12]


@pytest.mark.parametrize(
    ("filtering", "expected"),
    [
        ("tuned", [max(v, u) for v, u in zip(HAND_VERIFIED, HAND_UNFINISHED, strict=True)]),
        ("paper", [max(v, u) for v, u in zip(HAND_VERIFIED, HAND_UNFINISHED, strict=True)]),
        ("finished_only", HAND_VERIFIED),
    ],
)
def test_build_batch_filtering_keeps_verified_samples(tiny_cfg, filtering, expected):
    batch = build_batch(hand_rollout(), METHODS["filtering"], tiny_cfg(method="filtering", filtering=filtering))
    assert batch.weights.tolist() == [[float(e) for e in expected]]


def test_build_batch_gives_ppo_the_monte_carlo_returns_the_routed_estimator_needs(tiny_cfg):
    """lambda 1, bootstrapped only where the window cuts an episode (env0 after its Diamond), whatever the critic."""
    rollout = hand_rollout()._replace(values=torch.full((3, 1, 4), 0.3), next_value=torch.full((1, 4), 0.5))
    g = tiny_cfg().gamma
    batch = build_batch(rollout, METHODS["routing"], tiny_cfg(routed_advantage="no_baseline"))
    by_step = [[g, 1.0, 0.0, g * g], [1.0, g, 0.0, g], [g * 0.5, 1.0, 0.0, 1.0]]  # (T, N): reward 1 at any terminal
    torch.testing.assert_close(batch.mc_returns, torch.tensor([sum(by_step, [])]), rtol=1e-6, atol=1e-6)
    assert build_batch(rollout, METHODS["routing"], tiny_cfg(routed_advantage="shared_baseline")).mc_returns is None


# ----------------------------------------------------------------------------------------------------------------
# Steering and the constant gate
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "other"), [("diamond", "ghost"), ("ghost", "diamond")])
def test_steered_expert_uses_only_its_own_features(obs_batch, name, other):
    policy = moe()
    steered = policy.expert(name)
    assert isinstance(steered, SteeredPolicy)
    obs = obs_batch.double()
    logits = steered(obs)
    torch.testing.assert_close(logits, policy.head(getattr(policy, name)(obs.flatten(1))))
    assert steered.gate(steered.trunk(obs)) is None

    g = grads(policy, logits.logsumexp(-1).sum() + logits[:, 0].sum())
    assert zero(g[other]) and zero(g["gate_net"])
    assert norm(g[name]) > 0

    with torch.no_grad():  # the other expert's (and the gate's) parameters do not matter
        for p in [*getattr(policy, other).parameters(), *policy.gate_net.parameters()]:
            p.add_(torch.randn_like(p))
    torch.testing.assert_close(steered(obs), logits.detach())


def test_expert_rejects_unknown_names():
    with pytest.raises(ValueError, match="expert must be one of"):
        moe().expert("trained")
    with pytest.raises(ValueError, match="no experts"):
        SingleExpertPolicy(OBS_DIM, width=8).expert("diamond")


def test_constant_gate_has_no_gate_parameters(obs_batch):
    policy = moe(constant_gate=0.5)
    assert policy.gate_net is None
    assert not any(name.startswith("gate") for name, _ in policy.named_parameters())
    obs = obs_batch.double()
    trunk = policy.trunk(obs)
    torch.testing.assert_close(policy.gate(trunk), torch.full((len(obs),), 0.5, dtype=trunk.gate_logit.dtype))
    diamond, ghost = trunk.experts
    torch.testing.assert_close(policy.logits(trunk), policy.head(0.5 * diamond + 0.5 * ghost), check_dtype=False)

    # Labeled Diamond samples with a gate coefficient: there is no gate to train and the Ghost expert gets nothing.
    batch = make_batch(policy, obs_batch, [D] * len(obs))
    loss, _ = routed_loss(batch, policy, coefs(gate=0.1))
    g = grads(policy, loss)
    assert zero(g["ghost"]) and norm(g["diamond"]) > 0


# ----------------------------------------------------------------------------------------------------------------
# filtered_loss and policy_gradient_loss
# ----------------------------------------------------------------------------------------------------------------


def single(seed: int = 0) -> SingleExpertPolicy:
    torch.manual_seed(seed)
    return SingleExpertPolicy(OBS_DIM, width=8, depth=2).double()


KEPT = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1]


@pytest.mark.parametrize("clip", [0.2, None], ids=["ppo", "reinforce"])
@pytest.mark.parametrize("normalize", [True, False])
def test_filtered_loss_ignores_discarded_samples(obs_batch, clip, normalize):
    policy = single()
    batch = make_batch(policy, obs_batch, [B] * 12, weights=KEPT)
    keep = batch.weights > 0
    c = coefs(clip=clip, normalize=normalize, mean_over_used=True)
    loss, metrics = filtered_loss(batch, policy, c)
    full = grads(policy, loss)

    sub = Batch(*(None if field is None else field[keep] for field in batch[:-2]))
    sub_loss, sub_metrics = filtered_loss(sub, policy, c)
    only_kept = grads(policy, sub_loss)
    torch.testing.assert_close(loss, sub_loss)
    assert {k: float(v) for k, v in metrics.items()} == pytest.approx({k: float(v) for k, v in sub_metrics.items()})
    for name in full:
        for got, want in zip(full[name], only_kept[name], strict=True):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)

    # Discarded samples may hold anything: their actions, advantages and returns change nothing.
    wild = batch._replace(
        actions=torch.where(keep, batch.actions, (batch.actions + 2) % 4),
        advantages=torch.where(keep, batch.advantages, torch.full_like(batch.advantages, 1e6)),
        returns=torch.where(keep, batch.returns, torch.full_like(batch.returns, -1e6)),
    )
    torch.testing.assert_close(filtered_loss(wild, policy, c)[0], loss)


def test_filtered_loss_paper_mode_divides_by_every_sample(obs_batch):
    policy = single()
    batch = make_batch(policy, obs_batch, [B] * 12, weights=KEPT)
    tuned, _ = filtered_loss(batch, policy, coefs(mean_over_used=True))
    paper, _ = filtered_loss(batch, policy, coefs(mean_over_used=False))
    torch.testing.assert_close(paper, tuned * sum(KEPT) / len(KEPT))


def test_policy_gradient_loss_uses_every_sample_whatever_the_weights(obs_batch):
    policy = single()
    batch = make_batch(policy, obs_batch, [B] * 12, weights=KEPT)
    with_weights, _ = policy_gradient_loss(batch, policy, coefs())
    all_ones, _ = policy_gradient_loss(batch._replace(weights=torch.ones(12, dtype=torch.float64)), policy, coefs())
    torch.testing.assert_close(with_weights, all_ones)


class FixedLogits(torch.nn.Module):
    """A 'policy' whose logits and values are parameters, one row per sample, for losses computed by hand."""

    def __init__(self, logits: list[list[float]], values: list[float]):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(logits, dtype=torch.float64))
        self.v = torch.nn.Parameter(torch.tensor(values, dtype=torch.float64))

    def trunk(self, obs: torch.Tensor) -> Trunk:
        return Trunk((self.table,), None, self.v)

    def logits(self, trunk: Trunk, route=None) -> torch.Tensor:
        return trunk.experts[0]


def hand_batch(old_logp: list[float], advantages: list[float]) -> Batch:
    n = len(advantages)
    return Batch(
        obs=torch.zeros(n, 1),
        actions=torch.tensor([0, 0]),
        old_logp=torch.tensor(old_logp, dtype=torch.float64),
        advantages=torch.tensor(advantages, dtype=torch.float64),
        returns=torch.tensor([1.0, 1.0], dtype=torch.float64),
        weights=torch.ones(n, dtype=torch.float64),
        routes=torch.zeros(n, dtype=torch.int64),
        labels=torch.zeros(n, dtype=torch.int64),
    )


# Sample 1: uniform logits, pi(a=0) = 1/4. Sample 2: logits [ln 2, 0, 0, 0], pi = (2/5, 1/5, 1/5, 1/5), pi(a=0) = 2/5.
HAND_LOGITS = [[0.0, 0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0, 0.0]]
HAND_VALUES = [0.5, 0.0]  # returns are 1 and 1: value loss 0.5 * mean(0.25, 1) = 0.3125
HAND_ENTROPY = (math.log(4) - (0.4 * math.log(0.4) + 3 * 0.2 * math.log(0.2))) / 2
ENT, VF = 0.01, 0.5


def test_reinforce_loss_by_hand():
    policy = FixedLogits(HAND_LOGITS, HAND_VALUES)
    batch = hand_batch(old_logp=[0.0, 0.0], advantages=[1.0, -2.0])
    loss, metrics = policy_gradient_loss(batch, policy, coefs(clip=None))
    pg = -(1.0 * math.log(0.25) + -2.0 * math.log(0.4)) / 2
    assert metrics["losses/policy"] == pytest.approx(pg)
    assert metrics["losses/value"] == pytest.approx(0.3125)
    assert metrics["losses/entropy"] == pytest.approx(HAND_ENTROPY)
    assert loss.item() == pytest.approx(pg + VF * 0.3125 - ENT * HAND_ENTROPY)

    # d/d logits of -A log pi(a=0) / 2 is -A (onehot(0) - pi) / 2 (plus the entropy term's).
    policy.zero_grad()
    policy_gradient_loss(batch, policy, LossCoefs(None, 0.0, 0.0, 0.0, False))[0].backward()
    pi = torch.softmax(policy.table.detach(), -1)
    onehot = torch.nn.functional.one_hot(torch.tensor([0, 0]), 4).double()
    expected = -torch.tensor([[1.0], [-2.0]], dtype=torch.float64) * (onehot - pi) / 2
    torch.testing.assert_close(policy.table.grad, expected)


def test_ppo_clipped_surrogate_by_hand():
    """Ratio 1.5 on both samples: with A=+1 the clip caps it at 1.2; with A=-2 the pessimistic unclipped term wins."""
    policy = FixedLogits(HAND_LOGITS, HAND_VALUES)
    new_logp = [math.log(0.25), math.log(0.4)]
    batch = hand_batch(old_logp=[lp - math.log(1.5) for lp in new_logp], advantages=[1.0, -2.0])
    loss, metrics = policy_gradient_loss(batch, policy, coefs(clip=0.2))
    pg = (-1.0 * 1.2 + 2.0 * 1.5) / 2
    assert metrics["losses/policy"] == pytest.approx(pg)
    kl = (1.5 - 1) - math.log(1.5)
    assert metrics["losses/approx_kl"] == pytest.approx(kl)
    assert loss.item() == pytest.approx(pg + VF * 0.3125 - ENT * HAND_ENTROPY)

    # The clipped sample gets no policy gradient; the unclipped one does.
    policy.zero_grad()
    policy_gradient_loss(batch, policy, LossCoefs(0.2, 0.0, 0.0, 0.0, False))[0].backward()
    assert (policy.table.grad[0] == 0).all()
    assert policy.table.grad[1].abs().sum() > 0


def test_advantage_normalization_by_hand():
    policy = FixedLogits(HAND_LOGITS, HAND_VALUES)
    batch = hand_batch(old_logp=[0.0, 0.0], advantages=[3.0, -1.0])
    _, metrics = policy_gradient_loss(batch, policy, coefs(clip=None, normalize=True))
    # mean 1, sample std sqrt(8): normalized advantages are +-1/sqrt(2).
    a = 2.0 / math.sqrt(8.0)
    assert metrics["losses/policy"] == pytest.approx(-(a * math.log(0.25) - a * math.log(0.4)) / 2, rel=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Separate output layers: routing reaches each expert's own head only
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "nonzero", "exactly_zero"),
    [
        (D, ("diamond", "head", "critic"), ("ghost", "ghost_head", "gate_net")),
        (G, ("ghost", "ghost_head", "critic"), ("diamond", "head", "gate_net")),
        (B, ("diamond", "ghost", "head", "ghost_head", "gate_net", "critic"), ()),
    ],
    ids=["diamond", "ghost", "both"],
)
def test_separate_heads_keep_a_labeled_episode_out_of_the_other_expert_s_head(obs_batch, route, nonzero, exactly_zero):
    """With a shared head a Ghost-routed episode trains the layer the Diamond expert deploys with
    (test_routed_loss_reaches_only_the_routed_expert); with separate heads it does not."""
    policy = moe(separate_heads=True)
    batch = make_batch(policy, obs_batch, [route] * len(obs_batch))
    loss, _ = routed_loss(batch, policy, coefs(gate=0.0))
    assert_flow(grads(policy, loss), nonzero, exactly_zero)


def test_separate_heads_mix_the_experts_logits_and_start_like_a_shared_head(obs_batch):
    shared, separate = moe(), moe(separate_heads=True)
    for name, param in shared.named_parameters():  # the same seed draws every shared layer alike
        torch.testing.assert_close(separate.get_parameter(name), param, rtol=0, atol=0)
    obs = obs_batch.double()
    trunk = separate.trunk(obs)
    diamond, ghost = separate.head(trunk.experts[0]), separate.ghost_head(trunk.experts[1])
    g = torch.sigmoid(trunk.gate_logit).unsqueeze(-1)
    torch.testing.assert_close(separate(obs), g * diamond + (1 - g) * ghost)
    torch.testing.assert_close(separate.logits(trunk, route_masks(torch.tensor([D, G, B] * 4))), separate(obs))
    torch.testing.assert_close(separate.expert("diamond")(obs), diamond)
    torch.testing.assert_close(separate.expert("ghost")(obs), ghost)
    assert not torch.allclose(separate(obs), shared(obs))
