"""oversight_rl: gradient routing and its baselines for reinforcement learning under sparse oversight."""

__version__ = "0.1.0"

from oversight_rl.deploy import LoadedPolicy, load_policy  # noqa: E402

__all__ = ["LoadedPolicy", "__version__", "load_policy"]
