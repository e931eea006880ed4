"""The routed estimator, computed exactly: on a corridor small enough to enumerate every trajectory, the expected
update that :func:`oversight_rl.core.losses.routed_loss` gives the Diamond expert is compared with the gradient of the
probability of reaching the Diamond.

The corridor has cells 0 .. 4: the Diamond at 0, the Ghost at 4, the agent starting at cell 3, next to the Ghost.
It moves left or right; reaching either end ends the episode with routing's training reward +1, and an episode
that reaches neither within ``HORIZON`` steps times out (reward 0). Every terminal is watched, so every episode
that ends at a terminal is labeled and routed. The Diamond expert is a table of logits (cells 1-3 x 2 actions);
it learns from the samples not routed to the Ghost: Diamond-labeled episodes and time-outs. The shared critic is the
one routing's reward teaches a mixture that goes to the nearest terminal: ``V(s) = gamma^(distance - 1)``.
"""

from __future__ import annotations

import pytest
import torch

from oversight_rl.core.labels import Route
from oversight_rl.core.losses import Batch, LossCoefs, normalized, routed_advantages, routed_loss
from oversight_rl.core.policies import MoEPolicy, Trunk
from oversight_rl.engine.config import PAPER, TrainConfig

DIAMOND_CELL, GHOST_CELL, START = 0, 4, 3
HORIZON, GAMMA = 16, 0.97
LEFT, RIGHT = 0, 1
NEAREST_TERMINAL_VALUE = {1: 1.0, 2: GAMMA, 3: 1.0}  # the critic: discounted +1 at the nearest terminal


class TabularExpert(torch.nn.Module):
    """The Diamond expert as a table of logits by cell; the observation is the cell."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = torch.nn.Parameter(logits.clone())

    def trunk(self, obs: torch.Tensor) -> Trunk:
        return Trunk((self.table[obs.long()],), None, torch.zeros(len(obs), dtype=self.table.dtype))

    def logits(self, trunk: Trunk, route=None) -> torch.Tensor:
        return trunk.experts[0]


def trajectories(table: torch.Tensor):
    """Every trajectory from ``START``: ``(probability, [(cell, action)], terminal cell or None)``; differentiable."""
    probs = torch.softmax(table, dim=-1)
    out = []

    def walk(cell, steps, prob):
        if cell in (DIAMOND_CELL, GHOST_CELL) or len(steps) == HORIZON:
            out.append((prob, steps, cell if cell in (DIAMOND_CELL, GHOST_CELL) else None))
            return
        for action, move in ((LEFT, -1), (RIGHT, 1)):
            walk(cell + move, [*steps, (cell, action)], prob * probs[cell, action])

    walk(START, [], torch.ones((), dtype=table.dtype))
    return out


def reach_diamond(table: torch.Tensor) -> torch.Tensor:
    return torch.stack([p for p, _, end in trajectories(table) if end == DIAMOND_CELL]).sum()


def episodes(
    table: torch.Tensor,
    gamma: float = GAMMA,
    baseline=None,
    timeouts: bool = True,
    diamond_watched: bool = True,
    unwatched: float = 0.0,
) -> list[list[tuple]]:
    """The Diamond expert's samples, one list per episode it learns from: ``(cell, action, episode probability,
    G, G - b(s), route, watched)``, with ``b`` the critic (:data:`NEAREST_TERMINAL_VALUE`) or a constant.

    With probability ``1 - unwatched`` the Ghost is watched (its episodes go to the Ghost expert and are left out)
    and so is the Diamond unless ``diamond_watched`` is False (its episodes are then unlabeled); time-outs are kept
    unless ``timeouts`` is False. With probability ``unwatched`` no terminal is watched: every episode is unlabeled
    and reaches the Diamond expert wherever it ends."""
    out = []
    for prob, steps, end in trajectories(table):
        for watched, share in ((True, 1.0 - unwatched), (False, unwatched)):
            if share == 0 or (watched and end == GHOST_CELL) or (end is None and not timeouts):
                continue
            route = Route.DIAMOND if watched and end == DIAMOND_CELL and diamond_watched else Route.BOTH
            rows = []
            for t, (cell, action) in enumerate(steps):
                ret = gamma ** (len(steps) - 1 - t) if end is not None else 0.0
                b = NEAREST_TERMINAL_VALUE[cell] if baseline is None else baseline
                rows.append((float(cell), action, share * prob.item(), ret, ret - b, route, watched))
            out.append(rows)
    return out


def as_batch(rows: list[tuple]) -> Batch:
    """Samples weighted by their episode's probability: a batch whose loss is the expected loss, up to a positive
    constant."""
    columns = list(zip(*rows, strict=True))
    cell, weight, ret, advantage = (torch.tensor(columns[i], dtype=torch.float64) for i in (0, 2, 3, 4))
    action, route, watched = torch.tensor(columns[1]), torch.tensor(columns[5]), torch.tensor(columns[6])
    return Batch(
        obs=cell,
        actions=action,
        old_logp=torch.zeros(len(rows), dtype=torch.float64),
        advantages=advantage,  # what the trainers compute with the shared baseline (REINFORCE: G - V(s))
        returns=ret,
        weights=weight,
        routes=route,
        labels=route,
        mc_returns=ret,
        watched=watched,
    )


def expected_batch(table: torch.Tensor, **settings) -> Batch:
    return as_batch([row for episode in episodes(table, **settings) for row in episode])


def expected_update(table: torch.Tensor, estimator: str, **batch_settings) -> torch.Tensor:
    """The Diamond expert's expected routed policy-gradient step (REINFORCE, no entropy, value or gate term), as the
    gradient of ``E[sum over its samples]`` (the loss is a weighted mean: its weight sum is multiplied back)."""
    expert = TabularExpert(table)
    batch = expected_batch(table, **batch_settings)
    coefs = LossCoefs(clip=None, ent=0.0, vf=0.0, gate=0.0, normalize_advantages=False, routed_advantage=estimator)
    loss, _ = routed_loss(batch, expert, coefs)
    (grad,) = torch.autograd.grad(loss, expert.table)
    return -grad * batch.weights.sum()


def uniform_expert() -> torch.Tensor:
    return torch.zeros(5, 2, dtype=torch.float64)


def diamond_seeking_expert() -> torch.Tensor:
    """A Diamond expert part way there: it goes left with probability 0.73 in every cell."""
    table = torch.zeros(5, 2, dtype=torch.float64)
    table[:, LEFT] = 1.0
    return table


EXPERTS = pytest.mark.parametrize(
    "table", [uniform_expert(), diamond_seeking_expert()], ids=["uniform", "diamond-seeking"]
)


def toward_diamond(step: torch.Tensor, table: torch.Tensor) -> float:
    """The step's first-order change of the probability of reaching the Diamond from the start."""
    table = table.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(reach_diamond(table), table)
    return torch.sum(step * grad).item()


@EXPERTS
def test_the_shared_baseline_pushes_the_diamond_expert_away_from_the_diamond(table):
    """The paper's estimator: although every sample it learns from reached the Diamond or timed out, the expected
    step lowers the probability of reaching the Diamond from a cell next to the Ghost."""
    assert toward_diamond(expected_update(table, "shared_baseline"), table) < 0


@pytest.mark.parametrize("estimator", ["no_baseline", "routed_no_baseline"])
@EXPERTS
def test_without_a_baseline_on_routed_samples_the_step_raises_the_diamond(table, estimator):
    assert toward_diamond(expected_update(table, estimator), table) > 0


@EXPERTS
def test_no_baseline_is_the_exact_gradient_of_reaching_the_diamond(table):
    """Undiscounted, the Diamond route's return is 1 on every step of a Diamond episode, so the unbiased estimator's
    expected step is exactly the gradient of P(Diamond) (time-outs add nothing: their return is 0)."""
    target = table.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(reach_diamond(target), target)
    torch.testing.assert_close(expected_update(table, "no_baseline", gamma=1.0), grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("constant", [0.2, 0.5, 1.0])
def test_any_constant_baseline_on_routed_samples_subtracts_its_multiple_of_the_diamonds_gradient(constant):
    """Not only the critic: on the Diamond-routed samples a constant ``b`` adds exactly ``-b grad P(Diamond)``."""
    table = diamond_seeking_expert()
    routed_only = dict(gamma=1.0, baseline=constant, timeouts=False)
    biased = expected_update(table, "shared_baseline", **routed_only)
    bias = biased - expected_update(table, "no_baseline", **routed_only)
    target = table.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(reach_diamond(target), target)
    torch.testing.assert_close(bias, -constant * grad, rtol=1e-10, atol=1e-12)


def test_routed_no_baseline_keeps_the_baseline_on_unlabeled_samples_only():
    """Here the unlabeled samples are the time-outs: their baseline term is the one difference from no_baseline."""
    table = diamond_seeking_expert()
    batch = expected_batch(table)
    expert = TabularExpert(table)
    logp = torch.log_softmax(expert.trunk(batch.obs).experts[0], -1).gather(1, batch.actions[:, None]).squeeze(1)
    timeouts = batch.routes == Route.BOTH
    (term,) = torch.autograd.grad((batch.weights * timeouts * batch.advantages * logp).sum(), expert.table)
    expected = expected_update(table, "no_baseline") + term
    torch.testing.assert_close(expected_update(table, "routed_no_baseline"), expected, rtol=1e-10, atol=1e-12)
    assert term.abs().sum() > 0


@EXPERTS
def test_where_only_the_ghost_is_watched_routed_no_baseline_is_biased_like_the_papers(table):
    """Diamond episodes are then unlabeled, chosen by their outcome all the same (the terminal reached was not
    watched), and routed_no_baseline keeps the baseline on them: it lowers the Diamond as the paper's estimator does.
    Only no_baseline raises it there too."""
    unwatched = dict(diamond_watched=False)
    assert toward_diamond(expected_update(table, "routed_no_baseline", **unwatched), table) < 0
    assert toward_diamond(expected_update(table, "no_baseline", **unwatched), table) > 0


@pytest.mark.parametrize("unwatched", [0.3, 0.9])
@EXPERTS
def test_unwatched_baseline_has_exactly_the_expectation_of_no_baseline(table, unwatched):
    """The baseline is kept only in episodes with no watched terminal, whose route is BOTH wherever they end: there
    it cancels in expectation, so the expected step is exactly the unbiased one; the paper's is not."""
    mixed = dict(unwatched=unwatched)
    unbiased = expected_update(table, "no_baseline", **mixed)
    torch.testing.assert_close(expected_update(table, "unwatched_baseline", **mixed), unbiased, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(expected_update(table, "shared_baseline", **mixed), unbiased, rtol=1e-3, atol=1e-6)


def episode_steps(table: torch.Tensor, estimator: str, unwatched: float) -> list[tuple[float, torch.Tensor]]:
    """Each episode's probability and the Diamond expert's step from that episode alone."""
    expert = TabularExpert(table)
    steps = []
    for rows in episodes(table, unwatched=unwatched):
        batch = as_batch(rows)
        advantages, _ = routed_advantages(batch, estimator)
        logits = expert.trunk(batch.obs).experts[0]
        logp = torch.log_softmax(logits, -1).gather(1, batch.actions[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad((advantages * logp).sum(), expert.table)
        steps.append((rows[0][2], grad))
    return steps


def test_unwatched_baseline_has_less_variance_than_no_baseline():
    """The point of keeping it: the second moment of one episode's step, with most episodes unwatched."""
    table = diamond_seeking_expert()

    def second_moment(estimator):
        return sum(w * grad.pow(2).sum().item() for w, grad in episode_steps(table, estimator, unwatched=0.8))

    assert second_moment("unwatched_baseline") < 0.8 * second_moment("no_baseline")


# ----- the whole mixture -----------------------------------------------------------------------------------------


def mixture_batch(policy: MoEPolicy, unwatched: float) -> Batch:
    """Every sample of every episode of ``policy`` on the corridor (one-hot cells), weighted by its episode's
    probability: with probability ``unwatched`` no terminal is watched (every route is both), else both are."""
    cells = torch.eye(5, dtype=torch.float64)
    with torch.no_grad():
        table = policy(cells)
    rows = []
    for prob, steps, end in trajectories(table):
        for watched, share in ((True, 1.0 - unwatched), (False, unwatched)):
            outcome = {DIAMOND_CELL: Route.DIAMOND, GHOST_CELL: Route.GHOST, None: Route.BOTH}[end]
            route = outcome if watched else Route.BOTH
            for t, (cell, action) in enumerate(steps):
                ret = GAMMA ** (len(steps) - 1 - t) if end is not None else 0.0
                rows.append((cell, action, share * prob.item(), ret, NEAREST_TERMINAL_VALUE[cell], route, watched))
    cell, action, weight, ret, value, route, watched = (list(column) for column in zip(*rows, strict=True))
    ret, value = torch.tensor(ret, dtype=torch.float64), torch.tensor(value, dtype=torch.float64)
    return Batch(
        obs=cells[cell],
        actions=torch.tensor(action),
        old_logp=torch.zeros(len(rows), dtype=torch.float64),
        advantages=ret - value,
        returns=ret,
        weights=torch.tensor(weight, dtype=torch.float64),
        routes=torch.tensor(route),
        labels=torch.tensor(route),
        mc_returns=ret,
        watched=torch.tensor(watched),
    )


def mixture_update(policy: MoEPolicy, batch: Batch, estimator: str) -> dict[str, torch.Tensor]:
    """The expected routed step of every parameter of the mixture (the gate's cross-entropy left out)."""
    coefs = LossCoefs(clip=None, ent=0.0, vf=0.0, gate=0.0, normalize_advantages=False, routed_advantage=estimator)
    names, params = zip(*policy.named_parameters(), strict=True)
    grads = torch.autograd.grad(routed_loss(batch, policy, coefs)[0], params, allow_unused=True)
    total = batch.weights.sum()
    return {n: -g * total for n, g in zip(names, grads, strict=True) if g is not None}


@pytest.mark.parametrize("unwatched", [0.0, 0.7])
def test_every_unbiased_estimator_takes_the_same_expected_step_for_the_whole_mixture(unwatched):
    """Both experts, the gate and the shared output layer of a real MoEPolicy: ``unwatched_baseline`` and
    ``expert_returns`` reduce the variance of ``no_baseline`` without changing its expected step; the paper's
    estimator changes it."""
    torch.manual_seed(0)
    policy = MoEPolicy(5, width=4, depth=1, num_actions=2).double()  # cells one-hot, left or right
    batch = mixture_batch(policy, unwatched)
    unbiased = mixture_update(policy, batch, "no_baseline")
    assert set(unbiased) >= {"diamond.0.weight", "ghost.0.weight", "gate_net.1.weight", "head.weight"}
    for estimator in ("unwatched_baseline", "expert_returns"):
        step = mixture_update(policy, batch, estimator)
        for name, grad in unbiased.items():
            torch.testing.assert_close(step[name], grad, rtol=1e-9, atol=1e-12, msg=f"{estimator}: {name}")
    paper = mixture_update(policy, batch, "shared_baseline")
    assert not all(torch.allclose(paper[n], g, rtol=1e-3, atol=1e-6) for n, g in unbiased.items())


def test_the_default_is_unbiased_and_the_paper_preset_keeps_the_papers():
    assert TrainConfig().routed_advantage == "unwatched_baseline"
    assert PAPER["routed_advantage"] == "shared_baseline"


def test_routed_advantages_pick_returns_where_the_estimator_drops_the_baseline():
    batch = Batch(
        *(None,) * 3,
        advantages=torch.tensor([0.1, -0.2, 0.3, 0.4]),
        returns=None,
        weights=None,
        routes=torch.tensor([Route.DIAMOND, Route.BOTH, Route.GHOST, Route.BOTH]),
        labels=None,
        mc_returns=torch.tensor([0.9, 0.8, 0.7, 0.6]),
        watched=torch.tensor([True, True, True, False]),
    )
    same, none = routed_advantages(batch, "shared_baseline")
    assert none is None and torch.equal(same, batch.advantages)
    expected = {
        "routed_no_baseline": [True, False, True, False],
        "no_baseline": [True, True, True, True],
        "unwatched_baseline": [True, True, True, False],
    }
    for estimator, no_baseline in expected.items():
        advantages, mask = routed_advantages(batch, estimator)
        assert mask.tolist() == no_baseline, estimator
        torch.testing.assert_close(advantages, torch.where(mask, batch.mc_returns, batch.advantages))
    with pytest.raises(ValueError, match="mc_returns"):
        routed_advantages(batch._replace(mc_returns=None), "no_baseline")
    with pytest.raises(ValueError, match="watched"):
        routed_advantages(batch._replace(watched=None), "unwatched_baseline")


def test_normalization_scales_but_never_centers_a_sample_without_baseline():
    adv = torch.tensor([0.9, 0.8, 0.1, -0.3, 0.5])
    used = torch.tensor([True, True, True, True, False])
    no_baseline = torch.tensor([True, True, False, False, False])
    out = normalized(adv, used, no_baseline)
    scale = out[0] / adv[0]
    assert scale > 0
    torch.testing.assert_close(out[:2], adv[:2] * scale)  # only scaled: positive returns stay positive
    torch.testing.assert_close(out[2:4].sum(), torch.tensor(0.0))  # the others are centered on their own mean
    torch.testing.assert_close(normalized(adv, used, torch.zeros(5, dtype=torch.bool)), normalized(adv, used))


# ----- what the trainers record for it --------------------------------------------------------------------------


def check_watched(watched, dones, labeled, ghost_overseen) -> None:
    """Each step's flag is its episode's: constant until the episode ends, and set wherever the episode ended with a
    label or at a watched Ghost."""
    assert watched[dones & (labeled | ghost_overseen)].all()
    assert (~watched).any() and watched.any()
    assert torch.equal(watched[1:][~dones[:-1]], watched[:-1][~dones[:-1]])


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_native_trainer_records_each_episodes_oversight(tmp_path, tiny_cfg, backend):
    from oversight_rl.engine.collect import collect
    from oversight_rl.engine.trainer import Trainer

    trainer = Trainer([tiny_cfg(env_backend=backend, num_steps=32)], [tmp_path / "run"], progress=False)
    counters = torch.zeros(1, dtype=torch.int64)
    rollout, _ = collect(trainer.envs, trainer.population, trainer.obs, 32, trainer.action_keys, counters)
    check_watched(rollout.watched, rollout.dones, rollout.labeled, rollout.ghost_overseen)


def test_routed_ppo_records_each_episodes_oversight():
    from oversight_rl.sb3 import RoutedPPO, make_batched_vec_env

    env = make_batched_vec_env("OversightRL/DiamondGhost-5x5-v0", 16, seed=0, oversight=0.5)
    model = RoutedPPO("MoePolicy", env, n_steps=32, batch_size=128, seed=0, policy_kwargs={"width": 8})
    _, callback = model._setup_learn(model.n_steps * model.n_envs, None)
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    as_torch = (torch.from_numpy(getattr(buffer, name)) for name in ("watched", "dones", "labeled", "ghost_overseen"))
    check_watched(*as_torch)
