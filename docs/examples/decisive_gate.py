"""A method of your own, in one small file: gradient routing plus a penalty that pushes the gate to decide.

The package finds a method by its import path, ``module:NAME``, so nothing in the package changes. The folder holding
this file must be importable wherever runs train (here: ``PYTHONPATH=docs/examples``):

    PYTHONPATH=docs/examples python scripts/train_policy.py --method decisive_gate:DECISIVE_GATE
    PYTHONPATH=docs/examples python scripts/sweep_oversight.py --methods routing decisive_gate:DECISIVE_GATE

A method is a :class:`~oversight_rl.core.methods.Method`: its policy, training reward, loss and what it deploys. The
loss is one agent's, ``(batch, policy, coefs) -> (loss, metrics)``; write it with masks rather than indexing, because a
population trains many agents at once by mapping it over them with ``torch.func.vmap``.
"""

from __future__ import annotations

import torch

from oversight_rl.core.losses import routed_loss
from oversight_rl.core.methods import Method

PENALTY = 0.05
"""Weight of the mean ``g (1 - g)`` over the samples: zero for a gate that always picks one expert, 0.25 at most."""


def decisive_gate_loss(batch, policy, coefs):
    """Routing's loss plus ``PENALTY`` times the gate's indecision, ``mean g (1 - g)``."""
    trunk = batch.trunk if batch.trunk is not None else policy.trunk(batch.obs)  # one forward pass for both terms
    loss, metrics = routed_loss(batch._replace(trunk=trunk), policy, coefs)
    gate = torch.sigmoid(trunk.gate_logit)
    indecision = (gate * (1 - gate)).mean()
    metrics["losses/gate_indecision"] = indecision.detach()
    return loss + PENALTY * indecision, metrics


DECISIVE_GATE = Method("moe", "any_terminal", decisive_gate_loss, route=True, gate_loss=True, deploy="diamond")
