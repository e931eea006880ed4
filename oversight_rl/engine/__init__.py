"""A population of runs trained into run directories: settings, environments, rollouts, the trainer, the one
evaluation protocol, starting and resuming, and loading a trained policy. Adapters (SB3, W&B, TensorBoard, Ray)
are reached only by name, through :mod:`oversight_rl.engine.plugins`."""
