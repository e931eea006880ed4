"""oversight_rl: gradient routing and its baselines for reinforcement learning under sparse oversight."""

__version__ = "0.1.0"

from oversight_rl.deploy import LoadedPolicy, load_policy  # noqa: E402
from oversight_rl.policy_eval import Estimate, evaluate_policy  # noqa: E402

__all__ = ["Estimate", "LoadedPolicy", "__version__", "evaluate_policy", "load_policy"]
