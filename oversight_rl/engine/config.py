"""Every setting of a training run, in one dataclass; the command line is generated from it."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

import torch

import envs
from oversight_rl.core.losses import LOSS_SETTINGS
from oversight_rl.core.methods import get_method


@dataclass
class TrainConfig:
    """Train one method at one oversight level and evaluate it as it learns."""

    method: str = "routing"
    """Method to train: routing, no_routing, constant_gate, naive, naive_early_stop, filtering or oracle; or a method
    of your own as package.module:NAME (an oversight_rl.core.methods.Method)."""
    oversight: float = 0.1
    """Probability that each terminal's cell is overseen, in [0, 1]."""
    seed: int = 0
    """Seeds torch, the training environments and (offset) the evaluation environments."""
    env: str = "OversightRL/DiamondGhost-5x5-v0"
    """Registered environment id."""
    env_kwargs: str = "{}"
    """Settings of the environment beyond its preset, as a JSON object, e.g. '{"spurious_oversight": 0.2}' (not
    oversight, which has its own flag)."""
    algo: Literal["ppo", "reinforce"] = "ppo"
    """ppo: clipped surrogate with GAE and several epochs. reinforce: one step on Monte-Carlo returns per window."""
    trainer: Literal["native", "sb3"] = "native"
    """native: the package's own training loop. sb3: Stable-Baselines3's RoutedPPO (oversight_rl.sb3), same network,
    rollout and loss; PPO only, and no naive_early_stop. Its checkpoint is SB3's checkpoint.zip."""
    total_env_steps: int = 2_000_000
    """Environment steps to train for (the oracle trains for oversight x this). A budget that is not a whole number
    of windows ends with a shorter last window, so a run trains at most num_envs - 1 steps more than its budget."""
    num_envs: int = 256
    """Parallel environments in a rollout."""
    num_steps: int = 32
    """Steps per environment in a rollout window."""

    width: int = 64
    """Hidden units per layer of each expert, the gate and the value network of --critic mlp (the paper: 256)."""
    depth: int = 2
    """Hidden layers per expert and in the value network (the paper: 2)."""
    expert_heads: Literal["shared", "separate"] = "shared"
    """Output layer of a mixture policy. shared: one layer after the gated mix of the experts' features (the
    paper's), trained by every episode. separate: one per expert, the gate mixing their logits, each routed with
    its expert."""
    critic: Literal["mlp", "linear"] = "mlp"
    """Value network. mlp: depth hidden layers of width ReLU units. linear: the authors' (--preset paper), linear in
    the observation: a 1x1 convolution of its channels to 16, then linear layers of 256, 32 and 1 with no
    nonlinearity."""
    gate_net: Literal["mlp", "paper"] = "mlp"
    """Gate network of the mixture methods. mlp: one hidden layer of width ReLU units. paper: the authors' (--preset
    paper): a 1x1 convolution of the observation's channels, then two hidden layers of width ReLU units."""
    zero_bias: bool = False
    """Start every bias of the policy and value networks at zero, as the authors' code does (--preset paper);
    off: PyTorch's default initialisation. The weights are the same either way."""

    lr: float = 1e-3
    """Adam learning rate."""
    adam_eps: float = 1e-5
    """Adam's epsilon, added to the root of its second moment (PPO implementations' 1e-5; the authors' and
    PyTorch's default: 1e-8)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero over training; this tames the drift after the peak."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip; 0 turns clipping off."""
    gamma: float = 0.97
    """Discount. Hacking only pays when reaching a terminal sooner pays more, so keep it near the paper's 0.97."""
    gae_lambda: float = 0.95
    """GAE lambda (ppo)."""
    update_epochs: int = 4
    """Passes over each rollout (ppo)."""
    num_minibatches: int = 4
    """Minibatches per pass (ppo)."""
    clip_coef: float = 0.2
    """PPO ratio clip."""
    reuse_rollout_pass: bool = True
    """reinforce: backpropagate through the rollout's own forward pass instead of recomputing it (same gradient)."""
    normalize_advantages: bool = True
    """Standardize advantages in each minibatch."""
    ent_coef: float = 0.01
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    gate_coef: float = 0.1
    """Gate cross-entropy coefficient, averaged over labeled samples (the paper: 0.01)."""
    routed_advantage: Literal[
        "unwatched_baseline", "expert_returns", "no_baseline", "routed_no_baseline", "shared_baseline"
    ] = "unwatched_baseline"
    """Advantages of the mixture methods (routing, no_routing, constant_gate). A value baseline biases a sample
    chosen by its episode's outcome: on Diamond-routed samples it pushes the Diamond expert away from the Diamond.
    unwatched_baseline: the shared value baseline only in episodes with no overseen terminal (their route cannot
    depend on the outcome), Monte-Carlo returns elsewhere; unbiased. expert_returns: every part of the mixture learns
    from every sample, with its own route's return (0 on the other expert's labeled episodes) minus the baseline;
    unbiased (shared expert heads only). no_baseline: Monte-Carlo returns on every sample; unbiased, noisier.
    routed_no_baseline: none on labeled samples, the baseline on the others; still biased where one terminal is
    watched. shared_baseline: the paper's, the baseline on every sample."""
    filtering: Literal["tuned", "paper", "finished_only"] = "tuned"
    """Which samples filtering trains on, and how they are averaged. tuned: verified episodes (labeled or timed
    out) plus episodes unfinished in the window (with the algorithm's own return: bootstrapped under ppo), averaged
    over the kept samples. paper: the same samples, but averaged over all samples (discarded ones count as zero).
    finished_only: verified episodes only, averaged over them."""
    early_stop_signal: Literal["overseen", "oracle"] = "overseen"
    """Validation signal for naive_early_stop. overseen: mean true reward of validation episodes an overseer can
    verify (labeled or timed out). oracle: ground-truth true_return on all episodes, which no overseer has."""
    early_stop_patience: int = 0
    """Stop after this many evaluations without a better validation signal; 0 trains the whole budget."""
    label_noise: float = 0.0
    """Probability, in [0, 0.5], that the overseer's label of an episode is wrong, independently per labeled episode:
    a Diamond reported as a Ghost (seen under oversight) and a Ghost as a Diamond. Every method trains on the same
    wrong labels (routing's routes and gate, filtering's verified reward, naive's overseen penalty, the oracle's
    labels, which cover every episode), and early stopping's overseen signal reads them too; the environment's true
    reward and every evaluation metric do not. Drawn from each agent's own counter-based stream. Native trainer."""

    eval_every: int = 100_000
    """Environment steps between evaluations (scaled with the oracle's budget, so every method gets as many)."""
    eval_envs: int = 512
    """Fresh environments per evaluation; each runs max_steps steps."""
    device: str = "cpu"
    """Torch device."""
    env_backend: Literal["auto", "numpy", "torch"] = "auto"
    """Training environments. numpy: batched numpy on the CPU (any preset). torch: on the training device (native
    presets), so a rollout never leaves it. auto: torch on an accelerator, numpy on the CPU; a run records which."""
    threads: int = 1
    """Torch CPU threads. One is about 3x faster than two for these small networks. The thread count changes the CPU's
    summation order, so it is part of what a run computes: a resumed run or sweep keeps its own."""
    checkpoint_every_s: float = 300.0
    """Seconds of training between checkpoints beyond those at evaluations (native trainer), so that a run stopped
    before its next evaluation resumes from at most this far back; 0: only at evaluations."""
    capture_video: bool = False
    """At each checkpointed evaluation, also record the deployed policy playing a few seeded episodes, as
    videos/step-<env steps>.gif in the run directory (changes nothing the run computes)."""
    tensorboard: bool = False
    """Also write TensorBoard logs into the run directory (needs the tensorboard extra)."""
    track: bool = False
    """Also log the run to Weights & Biases: its settings and its training and evaluation scalars, as a W&B run named
    after the run directory (needs the wandb extra; WANDB_MODE=offline logs without an account)."""
    wandb_project_name: str = "oversight-rl"
    """Weights & Biases project of --track."""
    wandb_entity: str | None = None
    """Weights & Biases entity (user or team) of --track; None: your default entity."""
    preset: Literal["default", "paper", "tuned"] = "default"
    """Settings the others start from; recorded for reference. tuned: the run's method's best setting found by
    scripts/tune_methods.py (read from oversight_rl/engine/tuned_presets.json)."""

    @classmethod
    def from_saved(cls, saved: dict) -> TrainConfig:
        """The settings recorded in a run's config.json (which also holds fields that are not settings); a setting
        added since takes the value that computes what the run did (:data:`ADDED_SETTINGS`), others they lack keep
        their defaults (:meth:`missing_settings` says which)."""
        recorded = {f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved}
        return cls(**{**ADDED_SETTINGS, **recorded})

    def env_settings(self) -> dict:
        """``env_kwargs`` plus the oversight level: every keyword the environments are made with."""
        return {**json.loads(self.env_kwargs), "oversight": self.oversight}

    @classmethod
    def missing_settings(cls, saved: dict) -> list[str]:
        """The settings a run's config.json lacks, but those added since it was written (:data:`ADDED_SETTINGS`)."""
        return [f.name for f in dataclasses.fields(cls) if f.name not in saved and f.name not in ADDED_SETTINGS]

    def loss_settings(self) -> dict:
        """The settings the loss's coefficients are taken from (:data:`oversight_rl.core.losses.LOSS_SETTINGS`), by
        name."""
        return {name: getattr(self, name) for name in LOSS_SETTINGS}

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.num_steps

    def budget(self, scales_with_oversight: bool) -> int:
        """Environment steps this run trains for."""
        return int(self.total_env_steps * (self.oversight if scales_with_oversight else 1.0))

    def num_updates(self, scales_with_oversight: bool) -> int:
        """Updates that cover the budget (none for a budget of zero, as the oracle's at oversight 0)."""
        return math.ceil(self.budget(scales_with_oversight) / self.steps_per_update)

    def window_steps(self, update: int, scales_with_oversight: bool) -> int:
        """Steps per environment of update ``update`` (from 0): ``num_steps``, but the last update of a budget that
        is not a whole number of windows takes only what the budget has left (rounded up to whole steps of all
        environments, so the run trains at most ``num_envs - 1`` steps more than its budget)."""
        left = self.budget(scales_with_oversight) - update * self.steps_per_update
        return min(self.num_steps, math.ceil(left / self.num_envs))

    def trained_steps(self, scales_with_oversight: bool) -> int:
        """Environment steps the run trains on: its budget, rounded up to whole steps of all environments."""
        return self.num_envs * math.ceil(self.budget(scales_with_oversight) / self.num_envs)

    def eval_interval(self, scales_with_oversight: bool) -> int:
        """Updates between evaluations; scaled with the budget, so every method gets as many evaluations."""
        scale = self.oversight if scales_with_oversight else 1.0
        return max(1, round(self.eval_every * scale / self.steps_per_update))

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad flag and its allowed range."""
        checks = [
            ("oversight", 0.0 <= self.oversight <= 1.0, "in [0, 1]"),
            ("seed", 0 <= self.seed < MAX_SEED, f"in [0, 2**{MAX_SEED.bit_length() - 1})"),
            ("total_env_steps", self.total_env_steps >= 1, ">= 1"),
            ("num_envs", self.num_envs >= 1, ">= 1"),
            ("num_steps", self.num_steps >= 1, ">= 1"),
            ("width", self.width >= 1, ">= 1"),
            ("depth", self.depth >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0"),
            ("adam_eps", self.adam_eps > 0, "> 0"),
            ("max_grad_norm", self.max_grad_norm >= 0, ">= 0"),
            ("gamma", 0.0 <= self.gamma <= 1.0, "in [0, 1]"),
            ("gae_lambda", 0.0 <= self.gae_lambda <= 1.0, "in [0, 1]"),
            ("update_epochs", self.update_epochs >= 1, ">= 1"),
            (
                "num_minibatches",
                1 <= self.num_minibatches <= self.num_envs * self.num_steps,
                "in [1, num_envs*num_steps]",
            ),
            *self.loss_checks(),
            *self.choice_checks(),
            (
                "routed_advantage",
                self.routed_advantage != "expert_returns" or self.expert_heads == "shared",
                "another estimator with --expert-heads separate (expert_returns trains the output layer as a part of"
                " its own)",
            ),
            ("early_stop_patience", self.early_stop_patience >= 0, ">= 0"),
            ("label_noise", 0.0 <= self.label_noise <= 0.5, "in [0, 0.5]"),
            ("eval_every", self.eval_every >= 1, ">= 1"),
            ("eval_envs", self.eval_envs >= 1, ">= 1"),
            ("threads", self.threads >= 1, ">= 1"),
            ("checkpoint_every_s", self.checkpoint_every_s >= 0, ">= 0"),
        ]
        not_finite = next((f.name for f in dataclasses.fields(self) if not finite(getattr(self, f.name))), None)
        if not_finite is not None:
            checks.insert(0, (not_finite, False, "a finite number"))
        get_method(self.method)  # raises ValueError naming --method
        self.validate_env_kwargs()
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"{flag_name(name)} must be {allowed}, got {getattr(self, name)!r}")
        self.validate_env()
        self.validate_device()
        self.validate_trainer()

    def choice_checks(self) -> list[tuple[str, bool, str]]:
        """Each setting with a fixed set of values holds one of them (the command line enforces it; Python does not)."""
        hints = get_type_hints(type(self))
        checks = []
        for f in dataclasses.fields(self):
            if get_origin(hints[f.name]) is Literal:
                choices = get_args(hints[f.name])
                allowed = "one of " + ", ".join(map(repr, choices))
                checks.append((f.name, getattr(self, f.name) in choices, allowed))
        return checks

    def loss_checks(self) -> list[tuple[str, bool, str]]:
        """The checks of the loss settings, by the ranges :class:`~oversight_rl.core.losses.LossCoefs` declares."""
        return [
            (name, LOSS_SETTINGS[name].allows(value), LOSS_SETTINGS[name].allowed)
            for name, value in self.loss_settings().items()
        ]

    def validate_env_kwargs(self) -> None:
        """Raise ``ValueError`` naming --env-kwargs unless it is a JSON object of settings the environment takes."""
        try:
            settings = json.loads(self.env_kwargs)
        except json.JSONDecodeError as error:
            raise ValueError(f"--env-kwargs must be a JSON object, got {self.env_kwargs!r} ({error})") from None
        if not isinstance(settings, dict):
            raise ValueError(f"--env-kwargs must be a JSON object, got {self.env_kwargs!r}")
        reserved = sorted(set(settings) & {"oversight", "num_envs", "render_mode"})
        if reserved:
            raise ValueError(f"--env-kwargs may not set {', '.join(reserved)} (the run sets it), got {self.env_kwargs}")
        if self.env in envs.PRESETS:  # an unknown id is validate_env's to name
            taken = envs.setting_names(self.env)
            unknown = sorted(set(settings) - taken)
            if unknown:
                raise ValueError(
                    f"--env-kwargs: {self.env} takes no setting {', '.join(map(repr, unknown))}; it takes "
                    f"{', '.join(sorted(taken - {'oversight', 'render_mode'}))}"
                )

    def validate_env(self) -> None:
        """Raise ``ValueError`` unless ``env`` is a registered preset that ``env_backend`` can run."""
        if self.env not in envs.PRESETS:
            raise ValueError(f"--env must be a registered id, one of {', '.join(envs.PRESETS)}; got {self.env!r}")
        if self.env_backend not in ("auto", "numpy", "torch"):
            raise ValueError(f"--env-backend must be auto, numpy or torch, got {self.env_backend!r}")
        if self.env_backend == "torch" and envs.vectorization_of(self.env, oversight=self.oversight) != "native":
            native = [env_id for env_id in envs.PRESETS if envs.vectorization_of(env_id) == "native"]
            raise ValueError(
                f"--env-backend torch runs only presets with a native form ({', '.join(native)}); {self.env} has "
                "none: use --env-backend numpy"
            )

    def validate_device(self) -> None:
        """Raise ``ValueError`` unless ``device`` names a device this machine has."""
        kind, _, index = self.device.partition(":")
        if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
            raise ValueError(f"--device must be cpu, cuda[:N] or mps, got {self.device!r}")
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {self.device}: this machine has no CUDA device (use --device cpu)")
        if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
            last = torch.cuda.device_count() - 1
            raise ValueError(f"--device {self.device}: this machine's CUDA devices are cuda:0 to cuda:{last}")
        if kind == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"--device {self.device}: MPS is not available on this machine (use --device cpu)")

    def validate_trainer(self) -> None:
        """Raise ``ValueError`` naming --trainer and the flag it cannot serve."""
        if self.trainer == "native":
            return
        if self.algo != "ppo":
            raise ValueError(f"--trainer sb3 trains with --algo ppo only, got --algo {self.algo}; use --trainer native")
        if get_method(self.method).early_stopping:
            raise ValueError(
                f"--trainer sb3 does not support --method {self.method} (early stopping); use --trainer native"
            )
        if self.expert_heads != "shared":
            raise ValueError("--trainer sb3 supports --expert-heads shared only; use --trainer native")
        if self.label_noise > 0:
            raise ValueError(
                f"--trainer sb3 does not support --label-noise (got {self.label_noise}); use --trainer native"
            )


def finite(value) -> bool:
    """False for an infinite or NaN float setting; every other value passes."""
    return not isinstance(value, float) or math.isfinite(value)


MAX_SEED = 2**62
"""Seeds stay below it, so that a seed plus the evaluation's offsets fits a signed 64-bit integer."""
RUNTIME_SETTINGS = (
    "device",
    "checkpoint_every_s",
    "capture_video",
    "tensorboard",
    "track",
    "wandb_project_name",
    "wandb_entity",
)
"""Settings that do not change what a run computes on one machine: a resumed run or sweep may take new values for them.
Not ``threads``: the CPU's reductions sum in another order with another thread count, and 2M steps amplify that."""
ADDED_SETTINGS = {
    "expert_heads": "shared",
    "routed_advantage": "shared_baseline",
    "critic": "mlp",
    "gate_net": "mlp",
    "zero_bias": False,
    "adam_eps": 1e-5,
    "label_noise": 0.0,
}
"""Settings added after runs were recorded, each with the value that computes what the older code did: a run or
sweep recorded without one is read, and resumed, with that value."""


PAPER = dict(
    preset="paper",
    algo="reinforce",
    width=256,
    depth=2,
    num_envs=512,
    num_steps=32,
    lr=5e-5,
    anneal_lr=False,
    max_grad_norm=0.0,
    normalize_advantages=False,
    ent_coef=0.1,
    vf_coef=1.0,
    gate_coef=0.01,
    routed_advantage="shared_baseline",
    filtering="paper",
    critic="linear",
    gate_net="paper",
    zero_bias=True,
    adam_eps=1e-8,
    total_env_steps=20_000 * 512 * 32,
)
"""The gradient-routing paper's settings: REINFORCE, width 256, 512 x 32 windows, lr 5e-5, entropy 0.1, gate 0.01,
the shared value baseline on routed samples, 20,000 updates (328M environment steps), and the authors' networks and
optimizer: a linear critic, their gate, zero biases, Adam epsilon 1e-8, and their value loss, 0.5 (V - R)^2 (vf_coef 1:
the loss halves the squared error). docs/results.md ("The paper preset and the authors' code") lists what still
differs."""

PRESETS: dict[str, TrainConfig] = {"default": TrainConfig(), "paper": TrainConfig(**PAPER)}
PRESET_NAMES = (*PRESETS, "tuned")
"""Every preset: those of PRESETS, the same for every method, and ``tuned``, which differs by method."""
TUNED_PRESETS = Path(str(resources.files("oversight_rl.engine") / "tuned_presets.json"))
"""Each method's best setting found by tuning: ``{"methods": {method: {"settings": {...}, ...}}}``, written by
scripts/tune_methods.py."""


def tuned_config(method: str, path: str | Path | None = None) -> TrainConfig:
    """The best setting tuning found for ``method`` (from ``path``, by default :data:`TUNED_PRESETS`); a one-line
    ``ValueError`` when there is none yet."""
    path = Path(path or TUNED_PRESETS)
    if not path.exists():
        raise ValueError(f"--preset tuned: no tuning results yet ({path.name} not found); run tune_methods.py first")
    tuned = json.loads(path.read_text())["methods"]
    if method not in tuned:
        raise ValueError(
            f"--preset tuned: {method} has not been tuned ({path.name} holds {', '.join(tuned) or 'no method'}); "
            f"run tune_methods.py --methods {method}"
        )
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in tuned[method]["settings"].items() if k in fields}
    return TrainConfig(**{**ADDED_SETTINGS, **settings, "method": method, "preset": "tuned"})  # as it was tuned


def preset_config(name: str, method: str = "routing") -> TrainConfig:
    """The settings preset ``name`` gives a run of ``method``: ``tuned`` differs by method, the others do not."""
    if name == "tuned":
        return tuned_config(method)
    if name not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESET_NAMES)}, got {name!r}")
    return dataclasses.replace(PRESETS[name], method=method)


def with_overrides(config: TrainConfig, **overrides) -> TrainConfig:
    """A copy of ``config`` with some fields replaced."""
    return dataclasses.replace(config, **overrides)


def flag_name(setting: str) -> str:
    """The command-line flag of a setting: ``wandb_entity`` is ``--wandb-entity``."""
    return "--" + setting.replace("_", "-")


def setting_flags(setting: str, value) -> list[str]:
    """The command-line arguments that give ``setting`` the value ``value`` (a boolean as its flag or ``--no-`` flag,
    a float in its shortest exact form)."""
    if isinstance(value, bool):
        return [flag_name(setting) if value else flag_name(f"no_{setting}")]
    return [flag_name(setting), exact_text(value) if isinstance(value, float) else str(value)]


def exact_text(value: float) -> str:
    """``value`` as short as it reads back exactly: ``0.1``, ``1e-05``, ``0``; all its digits where ``:g``'s six
    would round it (a tuned learning rate)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)
