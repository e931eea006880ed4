"""Placeholder until the trainer lands: play one random DiamondGhost episode."""
import gymnasium as gym

import envs  # noqa: F401  (registers the environments)

env = gym.make("OversightRL/DiamondGhost-5x5-v0", oversight=0.1, render_mode="ansi")
obs, info = env.reset(seed=0)
done = False
while not done:
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    done = terminated or truncated
print(env.render(), info)
