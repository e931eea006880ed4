"""oversight_rl: gradient routing and its baselines for reinforcement learning under sparse oversight.

The package is layered; each subpackage imports only those below it (the README's "Architecture" maps them):

- ``core``: one agent's mathematics in pure torch (labels, policies, losses, methods, returns);
- ``rundir``: the run-directory format, its atomic writer and its readers (no torch of its own);
- ``engine``: populations of runs trained into run directories, evaluated, resumed and deployed;
- ``experiments``: many runs (sweeps, worker processes, tuning, budget ladders);
- ``analysis``: numbers and figures read from run directories; never trains;
- ``study``: the package's own published comparison (``scripts/reproduce_results.py``);
- ``adapters`` (W&B, TensorBoard, Ray) and ``sb3`` (Stable-Baselines3), which the engine loads by name.

The public names below resolve on first use, so ``import oversight_rl`` stays light.
"""

from importlib import import_module

from oversight_rl._version import __version__

_PUBLIC = {
    "Estimate": "oversight_rl.engine.policy_eval",
    "LoadedPolicy": "oversight_rl.engine.deploy",
    "TrainConfig": "oversight_rl.engine.config",
    "evaluate_policy": "oversight_rl.engine.policy_eval",
    "gather": "oversight_rl.rundir.gather",
    "load_policy": "oversight_rl.engine.deploy",
    "resume": "oversight_rl.engine.launch",
    "train": "oversight_rl.engine.launch",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'oversight_rl' has no attribute {name!r}")
    value = getattr(import_module(_PUBLIC[name]), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
