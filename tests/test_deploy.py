"""``LoadedPolicy`` (oversight_rl/engine/deploy.py): the observation layout it checks, single observations, seeded
sampling, SB3's ``predict``, and the variant it reports."""

from __future__ import annotations

import numpy as np
import pytest

import oversight_rl
from oversight_rl.engine.launch import train

LAYOUT = r"^observations must be \(B, 4, 5, 5\) float32"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_cfg):
    """Run directories of a tiny routing run and a tiny naive_early_stop run."""
    out = {}
    for method in ("routing", "naive_early_stop"):
        out[method] = tmp_path_factory.mktemp(method)
        train(tiny_cfg(method=method), out[method], progress=False)
    return out


@pytest.fixture
def policy(runs):
    return oversight_rl.load_policy(runs["routing"], "diamond")


def bad_observations(obs: np.ndarray) -> dict[str, np.ndarray]:
    """Arrays that are not ``(B, 4, 5, 5)`` observations, from a batch ``obs`` of three."""
    with_value = {}
    for name, value in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf), ("2", 2.0)):
        with_value[name] = obs.copy()
        with_value[name][1, 2, 3, 4] = value
    return {
        "channels-last": obs.transpose(0, 2, 3, 1),  # (3, 5, 5, 4), as image libraries lay them out
        "transposed": obs.T,  # (5, 5, 4, 3)
        "batch-second": obs.transpose(1, 0, 2, 3),  # (4, 3, 5, 5)
        "flat": obs.reshape(3, -1),
        "flat-single": obs[0].ravel(),
        "other-grid": np.zeros((3, 4, 8, 8), np.float32),
        "one-channel": obs[:, 0],  # (3, 5, 5)
        "strings": np.full((3, 4, 5, 5), "a"),
        "objects": np.full((3, 4, 5, 5), None),
        **with_value,
    }


BAD = list(bad_observations(np.zeros((3, 4, 5, 5), np.float32)))


@pytest.mark.parametrize("case", BAD)
def test_bad_observations_name_the_expected_layout(policy, observations, case):
    obs = bad_observations(observations(3, seed=1))[case]
    for call in (policy.action_probs, policy.act, policy.predict):
        with pytest.raises(ValueError, match=LAYOUT + r"[^\n]*$"):
            call(obs)


def test_other_real_dtypes_are_converted(policy, observations):
    obs = observations(6, seed=2)
    expected = policy.action_probs(obs)
    for dtype in (np.float64, np.int64, np.uint8, bool):
        np.testing.assert_allclose(policy.action_probs(obs.astype(dtype)), expected, atol=1e-7)


def test_single_observation_gives_a_single_row(policy, observations):
    obs = observations(5, seed=3)
    batch_probs = policy.action_probs(obs)
    for i in range(5):
        probs = policy.action_probs(obs[i])
        assert probs.shape == (4,)
        np.testing.assert_allclose(probs, batch_probs[i], atol=1e-7)
        action = policy.act(obs[i], greedy=True)
        assert np.ndim(action) == 0 and action == batch_probs[i].argmax()
        sampled = policy.act(obs[i])
        assert np.ndim(sampled) == 0 and 0 <= sampled <= 3
        predicted, state = policy.predict(obs[i], deterministic=True)
        assert state is None and isinstance(predicted, np.ndarray) and predicted.shape == ()
        assert predicted == batch_probs[i].argmax()


def test_sampling_is_seeded_by_default(runs, observations):
    obs = observations(64, seed=4)

    def actions(policy, calls=3):
        return np.stack([policy.act(obs) for _ in range(calls)])

    first = actions(oversight_rl.load_policy(runs["routing"], "trained"))
    again = actions(oversight_rl.load_policy(runs["routing"], "trained", seed=0))
    other = actions(oversight_rl.load_policy(runs["routing"], "trained", seed=1))
    np.testing.assert_array_equal(first, again)  # a freshly loaded policy replays its actions
    assert not np.array_equal(first, other)
    assert not np.array_equal(first[0], first[1])  # successive calls draw afresh

    # An explicit rng is used instead of the policy's own generator, which it leaves untouched.
    policy = oversight_rl.load_policy(runs["routing"], "trained")
    with_rng = policy.act(obs, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(with_rng, policy.act(obs, rng=np.random.default_rng(7)))
    np.testing.assert_array_equal(policy.act(obs), first[0])


def test_sampled_actions_follow_the_probabilities(policy, observations):
    obs = np.repeat(observations(1, seed=5), 20_000, axis=0)
    counts = np.bincount(policy.act(obs), minlength=4) / len(obs)
    probs = policy.action_probs(obs[0])
    assert np.abs(counts - probs).max() < 5 * np.sqrt(0.25 / len(obs))


def test_predict_is_stable_baselines3_style(runs, observations):
    obs = observations(32, seed=6)
    policy = oversight_rl.load_policy(runs["routing"], "trained")
    actions, state = policy.predict(obs, state=None, episode_start=np.ones(32, bool), deterministic=True)
    assert state is None
    np.testing.assert_array_equal(actions, policy.action_probs(obs).argmax(1))
    sampled, _ = policy.predict(obs)  # sampled from the policy's own seeded generator, as act
    np.testing.assert_array_equal(sampled, oversight_rl.load_policy(runs["routing"], "trained").act(obs))


def test_predict_runs_under_stable_baselines3_evaluate_policy(runs):
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy

    policy = oversight_rl.load_policy(runs["routing"])
    env = gym.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.5)
    env.reset(seed=0)
    returns, lengths = evaluate_policy(policy, env, n_eval_episodes=6, return_episode_rewards=True)
    assert len(returns) == len(lengths) == 6 and all(1 <= n <= 32 for n in lengths)


def test_variant_names_what_was_loaded(runs):
    early = runs["naive_early_stop"]
    assert oversight_rl.load_policy(early, "best").variant == "best"
    assert oversight_rl.load_policy(early, "deployed").variant == "best"  # what early stopping deploys
    assert oversight_rl.load_policy(early, "trained").variant == "trained"
    assert oversight_rl.load_policy(runs["routing"]).variant == "diamond"
    assert "best" in repr(oversight_rl.load_policy(early, "best"))
