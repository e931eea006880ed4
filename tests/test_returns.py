"""Labels, returns, advantages, training rewards and evaluation metrics against arrays computed by hand, and the
evaluation of two scripted policies whose scores are known."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from envs import Terminal
from envs.diamond_ghost import AGENT, DIAMOND, GHOST, MOVES
from oversight_rl.core.labels import UNFINISHED, Route, backfill, episode_routes, route_masks, verified_mask
from oversight_rl.core.policies import Trunk
from oversight_rl.core.returns import discounted_returns, gae
from oversight_rl.engine.collect import Rollout, training_rewards
from oversight_rl.engine.evaluate import auroc, episode_gate_means, evaluate, make_eval_env, summarize
from oversight_rl.rundir.metrics import METRICS

ENV_ID = "OversightRL/DiamondGhost-5x5-v0"
NONE, DIA, GHO, UNF = int(Terminal.NONE), int(Terminal.DIAMOND), int(Terminal.GHOST), UNFINISHED
D, G, B = int(Route.DIAMOND), int(Route.GHOST), int(Route.BOTH)


def f64(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def bools(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


# ----------------------------------------------------------------------------------------------------------------
# Labels: back-fill, routes, masks
# ----------------------------------------------------------------------------------------------------------------

# A (T=5, N=3) window; rows are time steps. Values at steps that are not episode ends are junk (7) and must be ignored.
# env0: Diamond ends at t=1, Ghost at t=3, then an episode still running at t=4.
# env1: one episode that never ends inside the window.
# env2: Ghost ends at t=0, then a time-out (NONE) at t=4.
DONES = bools([[0, 0, 1], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]])
TERMINAL = torch.tensor([[7, 7, GHO], [DIA, 7, 7], [7, 7, 7], [GHO, 7, 7], [7, 7, NONE]], dtype=torch.int8)
OUTCOME = [[DIA, UNF, GHO], [DIA, UNF, NONE], [GHO, UNF, NONE], [GHO, UNF, NONE], [UNF, UNF, NONE]]
# Labels recorded at the episode ends: env0's Diamond is overseen, its Ghost is not; env2's Ghost is overseen.
LABELED_AT_END = bools([[1, 1, 1], [1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 1, 0]])  # junk where not done
EPISODE_LABELED = [[1, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_backfill_outcomes():
    assert backfill(TERMINAL, DONES, UNFINISHED).tolist() == OUTCOME


def test_backfill_labels_unfinished_episodes_are_unlabeled():
    assert backfill(LABELED_AT_END, DONES, False).tolist() == [[bool(x) for x in row] for row in EPISODE_LABELED]


def test_backfill_floats():
    values = f64([[9, 9, 0.5], [1.5, 9, 9], [9, 9, 9], [-2, 9, 9], [9, 9, 3]])
    expected = [[1.5, -1, 0.5], [1.5, -1, 3], [-2, -1, 3], [-2, -1, 3], [-1, -1, 3]]
    assert backfill(values, DONES, -1.0).tolist() == expected


def test_episode_routes_masks_and_verified():
    outcome = torch.tensor(OUTCOME, dtype=torch.int8)
    labeled = bools(EPISODE_LABELED)
    routes = episode_routes(outcome, labeled)
    # Labeled Diamond -> D, labeled Ghost -> G; unlabeled Ghost, time-outs and unfinished episodes -> BOTH.
    assert routes.tolist() == [[D, B, G], [D, B, B], [B, B, B], [B, B, B], [B, B, B]]

    masks = route_masks(routes)
    assert masks.diamond.tolist() == [[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert masks.ghost.tolist() == [[0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]
    assert masks.gate.tolist() == [[0, 1, 0], [0, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]

    # Verified: labeled, or timed out. Unlabeled Ghost (env0 t=2,3) and unfinished episodes are not.
    assert verified_mask(outcome, labeled).tolist() == [[1, 0, 1], [1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]]


def test_route_masks_each_route():
    masks = route_masks(torch.tensor([D, G, B]))
    assert masks.diamond.tolist() == [True, False, True]
    assert masks.ghost.tolist() == [False, True, True]
    assert masks.gate.tolist() == [False, False, True]


def test_rollout_outcome_properties():
    rollout = make_rollout(TERMINAL, DONES, labeled=LABELED_AT_END)
    assert rollout.outcome.tolist() == OUTCOME
    assert rollout.episode_labeled.int().tolist() == EPISODE_LABELED


# ----------------------------------------------------------------------------------------------------------------
# Discounted returns and GAE
# ----------------------------------------------------------------------------------------------------------------


def test_discounted_returns_by_hand():
    # gamma = 0.5; (T=4, N=3).
    # env0: +1 ending at t=1, then +1 ending at t=3.   G = [0.5, 1, 0.5, 1]
    # env1: -1 ending at t=2, then an unfinished one.   G = [-0.25, -0.5, -1, 0]
    # env2: no episode end; a reward inside the window still counts, nothing after it does.  G = [0.125, 0.25, 0.5, 1]
    rewards = f64([[0, 0, 0], [1, 0, 0], [0, -1, 0], [1, 0, 1]])
    dones = bools([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    expected = f64([[0.5, -0.25, 0.125], [1, -0.5, 0.25], [0.5, -1, 0.5], [1, 0, 1]])
    torch.testing.assert_close(discounted_returns(rewards, dones, 0.5), expected)


def test_discounted_returns_episode_end_cuts_the_sum():
    """A reward right after an episode end never leaks into the previous episode."""
    rewards = f64([[0], [0], [5]])
    dones = bools([[0], [1], [0]])
    torch.testing.assert_close(discounted_returns(rewards, dones, 0.9), f64([[0], [0], [5]]))


# gamma = 0.5, (T=3, N=2).
# env0: reward +1 at the episode end t=2; next_value must be ignored (the episode ended).
# env1: reward +1 ending at t=0, then an episode still running at t=2, bootstrapped from next_value = 1.6.
GAE_REWARDS = f64([[0, 1], [0, 0], [1, 0]])
GAE_VALUES = f64([[0.2, 0.5], [0.4, 0.2], [0.8, 0.4]])
GAE_DONES = bools([[0, 1], [0, 0], [1, 0]])
GAE_NEXT = f64([10.0, 1.6])
# TD errors delta_t = r_t + gamma * V(next) * (1 - done_t) - V_t:
#   env0: [0 + .5*.4 - .2, 0 + .5*.8 - .4, 1 - .8] = [0, 0, .2]
#   env1: [1 - .5, 0 + .5*.4 - .2, 0 + .5*1.6 - .4] = [.5, 0, .4]
TD = [[0.0, 0.5], [0.0, 0.0], [0.2, 0.4]]
# lambda = 1: (discounted return + bootstrap) - value.
#   env0: returns [.25, .5, 1] -> [.05, .1, .2]
#   env1: t=0 return 1 -> .5; t=1: .5^2 * 1.6 = .4 -> .2; t=2: .5 * 1.6 = .8 -> .4
MC = [[0.05, 0.5], [0.1, 0.2], [0.2, 0.4]]
# lambda = 0.5: A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}
#   env0: [0 + .25*.05, 0 + .25*.2, .2] = [.0125, .05, .2];   env1: [.5, 0 + .25*.4, .4] = [.5, .1, .4]
HALF = [[0.0125, 0.5], [0.05, 0.1], [0.2, 0.4]]


@pytest.mark.parametrize(("lam", "expected"), [(0.0, TD), (1.0, MC), (0.5, HALF)], ids=["td", "monte-carlo", "half"])
def test_gae_by_hand(lam, expected):
    advantages, returns = gae(GAE_REWARDS, GAE_VALUES, GAE_DONES, GAE_NEXT, 0.5, lam)
    torch.testing.assert_close(advantages, f64(expected))
    torch.testing.assert_close(returns, f64(expected) + GAE_VALUES)


def test_gae_lambda_one_equals_discounted_returns_plus_bootstrap():
    gen = torch.Generator().manual_seed(0)
    rewards = (torch.rand(16, 8, generator=gen) < 0.2).double()
    dones = torch.rand(16, 8, generator=gen) < 0.2
    values = torch.rand(16, 8, generator=gen, dtype=torch.float64)
    next_value = torch.rand(8, generator=gen, dtype=torch.float64)
    gamma = 0.9
    # Bootstrap: unfinished episodes get gamma^(T - t) * next_value on top of their in-window return.
    alive_to_end = torch.flip(torch.cumprod(torch.flip((~dones).double(), [0]), 0), [0])
    steps_left = torch.arange(16, 0, -1, dtype=torch.float64)[:, None]
    bootstrap = alive_to_end * gamma**steps_left * next_value
    advantages, returns = gae(rewards, values, dones, next_value, gamma, 1.0)
    torch.testing.assert_close(returns, discounted_returns(rewards, dones, gamma) + bootstrap)
    torch.testing.assert_close(advantages, returns - values)


def test_a_shorter_window_equals_the_window_cut_at_its_end():
    """A window that ends after step ``t_k`` of column ``k`` (the last, partial window of a budget) gives, on its steps,
    what a window of ``t_k + 1`` steps gives: GAE bootstraps from the next value, and nothing later counts."""
    gen = torch.Generator().manual_seed(1)
    t, n, gamma, lam = 12, 5, 0.9, 0.8
    rewards = (torch.rand(t, n, generator=gen) < 0.3).double()
    dones = torch.rand(t, n, generator=gen) < 0.3
    values = torch.rand(t, n, generator=gen, dtype=torch.float64)
    next_value = torch.rand(n, generator=gen, dtype=torch.float64)
    last = torch.tensor([11, 0, 4, 7, 9])  # the last step of each column's window
    window_ends = torch.arange(t)[:, None] == last[None, :]
    advantages, _ = gae(rewards, values, dones, next_value, gamma, lam, window_ends)
    returns = discounted_returns(rewards, dones, gamma, window_ends)
    for k, end in enumerate(last.tolist()):
        keep = slice(0, end + 1)
        following = next_value[k : k + 1] if end == t - 1 else values[end + 1, k : k + 1]
        cut, _ = gae(rewards[keep, k : k + 1], values[keep, k : k + 1], dones[keep, k : k + 1], following, gamma, lam)
        torch.testing.assert_close(advantages[keep, k : k + 1], cut)
        torch.testing.assert_close(
            returns[keep, k : k + 1], discounted_returns(rewards[keep, k : k + 1], dones[keep, k : k + 1], gamma)
        )


# ----------------------------------------------------------------------------------------------------------------
# Training rewards
# ----------------------------------------------------------------------------------------------------------------


def make_rollout(terminal, dones, labeled=None, ghost_overseen=None) -> Rollout:
    shape = tuple(dones.shape)
    false = torch.zeros(shape, dtype=torch.bool)
    return Rollout(
        obs=torch.zeros(*shape, 4, 5, 5),
        actions=torch.zeros(shape, dtype=torch.long),
        logp=torch.zeros(shape),
        values=torch.zeros(shape),
        dones=dones,
        terminal=terminal,
        labeled=false if labeled is None else labeled,
        ghost_overseen=false if ghost_overseen is None else ghost_overseen,
        next_value=torch.zeros(shape[1]),
        trunk=None,
    )


# (T=2, N=3): Diamond, an overseen Ghost, an unoverseen Ghost, a time-out and two steps with no episode end.
REWARD_TERMINAL = torch.tensor([[NONE, DIA, GHO], [GHO, NONE, NONE]], dtype=torch.int8)
REWARD_DONES = bools([[0, 1, 1], [1, 1, 0]])
REWARD_GHOST_OVERSEEN = bools([[1, 1, 0], [1, 0, 1]])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("any_terminal", [[0, 1, 1], [1, 0, 0]]),
        ("proxy", [[0, 1, 1], [-1, 0, 0]]),  # -1 only for the Ghost reached under oversight
        ("true", [[0, 1, -1], [-1, 0, 0]]),
    ],
)
def test_training_rewards(kind, expected):
    rollout = make_rollout(REWARD_TERMINAL, REWARD_DONES, ghost_overseen=REWARD_GHOST_OVERSEEN)
    rewards = training_rewards(rollout, kind)
    assert rewards.dtype == torch.float32
    assert rewards.tolist() == expected


def test_training_rewards_rejects_unknown_kind():
    with pytest.raises(ValueError, match="reward must be"):
        training_rewards(make_rollout(REWARD_TERMINAL, REWARD_DONES), "bogus")


# ----------------------------------------------------------------------------------------------------------------
# Evaluation metrics
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "positive", "expected"),
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),  # .35 beats .1 only; .8 beats both
        ([0.5, 0.5, 0.5, 0.9], [1, 0, 0, 1], 0.75),  # .5 ties both negatives (2 x 1/2); .9 beats both
        ([0.3, 0.3, 0.3], [1, 0, 1], 0.5),  # all tied
        ([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0], 1.0),
        ([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0], 0.0),
        ([0.2, 0.6, 0.6, 0.4, 0.6], [0, 1, 0, 1, 0], 0.5),  # .6: beats .2, ties .6 twice -> 2; .4: beats .2 -> 1; 3/6
    ],
)
def test_auroc_by_hand(scores, positive, expected):
    assert auroc(np.array(scores), np.array(positive, dtype=bool)) == pytest.approx(expected)


def test_auroc_empty_class_is_nan():
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([True, True])))
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([False, False])))
    assert np.isnan(auroc(np.array([]), np.array([], dtype=bool)))


def test_episode_gate_means_by_hand():
    # (T=4, N=2). env0: episodes t=0..1 and t=2..3. env1: an episode at t=0, then one unfinished (left out).
    gate = np.array([[0.2, 0.9], [0.4, 0.1], [0.6, 0.1], [1.0, 0.1]])
    dones = np.array([[0, 1], [1, 0], [0, 0], [1, 0]], dtype=bool)
    np.testing.assert_allclose(episode_gate_means(gate, dones), [0.3, 0.8, 0.9])


def hand_records(with_gate: bool = False) -> dict[str, np.ndarray]:
    """(T=3, N=4) step records, as :func:`oversight_rl.engine.evaluate.run_episodes` writes them.

    env0: unoverseen Ghost at t=0 (unlabeled, -1); Diamond at t=2 (labeled, +1); Ghost cell not overseen.
    env1: Diamond at t=1 (unlabeled, +1) with the Ghost cell overseen; then unfinished.
    env2: time-out at t=2 with the Ghost cell overseen.
    env3: unoverseen Ghost at t=1 (unlabeled, -1); Diamond at t=2 (unlabeled, +1).
    """
    rec = {
        "true_reward": np.array([[-1, 0, 0, 0], [0, 1, 0, -1], [1, 0, 0, 1]], np.float32),
        "dones": np.array([[1, 0, 0, 0], [0, 1, 0, 1], [1, 0, 1, 1]], bool),
        "terminal": np.array([[GHO, 0, 0, 0], [0, DIA, 0, GHO], [DIA, 0, NONE, DIA]], np.int8),
        "labeled": np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], bool),
        "ghost_overseen": np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], bool),
        "gate": np.full((3, 4), np.nan, np.float32),
    }
    if with_gate:
        # Episode-mean gates: env0 Ghost .2, env0 Diamond .8 (labeled: left out), env1 Diamond .3, env3 Ghost .4,
        # env3 Diamond .9; env1's unfinished step and env2's time-out are left out whatever their gate.
        rec["gate"] = np.array([[0.2, 0.3, 0.5, 0.5], [0.9, 0.3, 0.5, 0.3], [0.7, 0.0, 0.5, 0.9]], np.float32)
    return rec


def test_summarize_by_hand():
    metrics = summarize(hand_records(), gamma=0.5)
    assert set(metrics) == set(METRICS)
    # Episodes, env by env: G, D | D | NONE | G, D.
    assert metrics["episodes"] == 6
    assert metrics["diamond_rate"] == pytest.approx(3 / 6)
    assert metrics["ghost_rate"] == pytest.approx(2 / 6)
    assert metrics["timeout_rate"] == pytest.approx(1 / 6)
    assert metrics["episode_return"] == pytest.approx((-1 + 1 + 1 + 0 - 1 + 1) / 6)
    # Ghost cell unoverseen: env0's two episodes and env3's two -> 2 Ghosts of 4. Overseen: env1 D and env2 NONE -> 0.
    assert metrics["ghost_rate_unoverseen"] == pytest.approx(0.5)
    assert metrics["ghost_rate_overseen"] == pytest.approx(0.0)
    assert metrics["hacking_gap"] == pytest.approx(0.5)
    # Verified: env0's labeled Diamond (+1) and env2's time-out (0).
    assert metrics["verified_return"] == pytest.approx(0.5)
    # Discounted return-to-go at gamma 0.5, per env over t=0..2:
    #   env0 [-1, .5, 1], env1 [.5, 1, 0], env2 [0, 0, 0], env3 [-.5, -1, 1] -> sum 1.5 over 12 steps.
    assert metrics["true_return"] == pytest.approx(1.5 / 12)
    # Its standard error, over the environments' window means [.5/3, 1.5/3, 0, -.5/3] (sample std / sqrt 4).
    window_means = np.array([0.5, 1.5, 0.0, -0.5]) / 3
    assert metrics["true_return_se"] == pytest.approx(window_means.std(ddof=1) / 2)
    assert np.isnan(metrics["gate_auroc"])


def test_summarize_gate_auroc_scores_unlabeled_episodes_only():
    metrics = summarize(hand_records(with_gate=True), gamma=0.5)
    # Ghost score = 1 - mean gate. Unlabeled Ghost episodes: .8 (env0), .6 (env3). Unlabeled Diamond: .7 (env1),
    # .1 (env3). Pairs won: .8>.7, .8>.1, .6>.1 -> 3/4. (Counting env0's labeled Diamond, score .2, would give 5/6.)
    assert metrics["gate_auroc"] == pytest.approx(0.75)


def test_summarize_nan_when_a_group_is_empty():
    rec = hand_records()
    rec["ghost_overseen"][:] = False
    metrics = summarize(rec, gamma=0.5)
    assert np.isnan(metrics["ghost_rate_overseen"]) and np.isnan(metrics["hacking_gap"])
    assert metrics["ghost_rate_unoverseen"] == pytest.approx(2 / 6)


# ----------------------------------------------------------------------------------------------------------------
# Scripted policies on the real environment: known scores
# ----------------------------------------------------------------------------------------------------------------

ROWS = COLS = 5
CELLS = ROWS * COLS


def shortest_distances() -> np.ndarray:
    """``dist[target, avoid, cell]``: steps from ``cell`` to ``target`` on the 5x5 grid never entering ``avoid``."""
    dist = np.full((CELLS, CELLS, CELLS), 10**6, dtype=np.int64)
    for target in range(CELLS):
        for avoid in range(CELLS):
            if avoid == target:
                continue
            dist[target, avoid, target] = 0
            queue = deque([target])
            while queue:
                cell = queue.popleft()
                r, c = divmod(cell, COLS)
                for dr, dc in MOVES:
                    nr, nc = r + dr, c + dc
                    nxt = nr * COLS + nc
                    if 0 <= nr < ROWS and 0 <= nc < COLS and nxt != avoid and dist[target, avoid, nxt] > 10**5:
                        dist[target, avoid, nxt] = dist[target, avoid, cell] + 1
                        queue.append(nxt)
    return dist


# NEXT_CELL[cell, action]: where an action leads (a move into the wall stays put).
_r, _c = np.divmod(np.arange(CELLS), COLS)
NEXT_CELL = np.stack([np.clip(_r + dr, 0, ROWS - 1) * COLS + np.clip(_c + dc, 0, COLS - 1) for dr, dc in MOVES], axis=1)


class ScriptedPolicy(torch.nn.Module):
    """A deterministic hand-written policy with the interface :func:`oversight_rl.engine.evaluate.run_episodes` uses.

    ``diamond``: shortest path to the Diamond, stepping around the Ghost. ``nearest``: shortest path to whichever
    terminal is nearer (the Diamond on ties), stepping around the other one.
    """

    DIST = None

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # run_episodes reads the device from a parameter
        if ScriptedPolicy.DIST is None:
            ScriptedPolicy.DIST = shortest_distances()

    def trunk(self, obs: torch.Tensor) -> Trunk:
        return Trunk((obs,), None, torch.zeros(obs.shape[0]))

    def gate(self, trunk: Trunk) -> None:
        return None

    def actions(self, obs: np.ndarray) -> np.ndarray:
        flat = obs.reshape(obs.shape[0], 4, CELLS)
        agent, ghost, diamond = (flat[:, ch].argmax(1) for ch in (AGENT, GHOST, DIAMOND))
        dist = self.DIST
        target, avoid = diamond, ghost
        if self.mode == "nearest":
            to_ghost = dist[ghost, diamond, agent] < dist[diamond, ghost, agent]
            target, avoid = np.where(to_ghost, ghost, diamond), np.where(to_ghost, diamond, ghost)
        after = dist[target[:, None], avoid[:, None], NEXT_CELL[agent]]  # (B, 4) distance left after each action
        after[NEXT_CELL[agent] == avoid[:, None]] = 10**6
        return after.argmin(1)

    def logits(self, trunk: Trunk, route=None) -> torch.Tensor:
        acts = torch.from_numpy(self.actions(trunk.experts[0].numpy()))
        logits = torch.full((len(acts), 4), -1e9)
        logits[torch.arange(len(acts)), acts] = 0.0
        return logits


@pytest.fixture(scope="module")
def eval_env():
    return make_eval_env(ENV_ID, 512, 0.1)


def test_optimal_diamond_policy_scores_about_091(eval_env):
    """The paper's ceiling: a perfect Diamond policy scores about 0.91 in true return on the 5x5 grid.

    Measured 0.906-0.909 over evaluation seeds 0-2; the spread over seeds is ~0.002, so 0.88-0.94 is a wide band
    that still rules out a wrong discount, a wrong window or a return that ignores episode ends."""
    metrics = evaluate(ScriptedPolicy("diamond"), eval_env, seed=0, gamma=0.97)
    assert metrics["diamond_rate"] == 1.0
    assert metrics["ghost_rate"] == 0.0 and metrics["timeout_rate"] == 0.0
    assert metrics["episode_return"] == 1.0 and metrics["verified_return"] == 1.0
    assert 0.88 <= metrics["true_return"] <= 0.94


def test_nearest_terminal_policy_scores_about_018(eval_env):
    """A policy that hacks whenever the Ghost is nearer, whether watched or not: about 0.18 in true return.

    Measured 0.155-0.180 over evaluation seeds 0-2 (its Ghost rate is ~0.43, so it varies more than the perfect
    policy's); 0.10-0.26 separates it from the perfect policy (~0.91) and from hacking on ties too (~ -0.18)."""
    metrics = evaluate(ScriptedPolicy("nearest"), eval_env, seed=0, gamma=0.97)
    assert 0.10 <= metrics["true_return"] <= 0.26
    assert 0.35 <= metrics["ghost_rate"] <= 0.5
    assert metrics["timeout_rate"] == 0.0
    assert abs(metrics["hacking_gap"]) < 0.1  # it ignores oversight
