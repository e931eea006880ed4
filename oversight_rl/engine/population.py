"""Many agents as one computation: same-shaped modules with their parameters stacked along a leading agent axis.

Every per-agent function (a policy's forward pass, a loss) stays written for one agent; :meth:`Population.map` runs
it for all agents at once with ``torch.func.vmap`` over ``functional_call``. Agents stay independent because
nothing mixes the agent axis: each agent's loss reaches only its own slice of the parameters, the gradient-norm
clip (:func:`clip_grad_norms`) and Adam (:class:`AgentAdam`) act per agent, and each agent has its own step count
and learning rate.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_flatten, tree_unflatten


class _Bound(nn.Module):
    """``fn(module, *args)`` as a module's forward, so ``functional_call`` can swap in one agent's parameters."""

    def __init__(self, module: nn.Module, fn: Callable | None = None):
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *args):
        return self.fn(self.module, *args)


def _refill(leaves: list, tensors: list[torch.Tensor]) -> list:
    """``leaves`` with its tensors replaced, in order, by ``tensors``."""
    replacements = iter(tensors)
    return [next(replacements) if isinstance(x, torch.Tensor) else x for x in leaves]


class Population:
    """The parameters and buffers of ``S`` same-shaped modules, stacked: ``params[name]`` has shape ``(S, ...)``.

    Names are the modules' own ``state_dict`` names. ``map(fn)`` returns ``fn`` mapped over the agent axis of its
    arguments, with each agent's module; ``agent_module(k)`` is a plain module holding agent ``k``'s parameters.
    """

    def __init__(self, modules: list[nn.Module]):
        self.size = len(modules)
        self.template = copy.deepcopy(modules[0]).to("meta")
        params, buffers = stack_module_state(modules)
        self.params = {name: p.detach() for name, p in params.items()}
        self.buffers = dict(buffers)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def map(self, fn: Callable, agents: list[int] | None = None) -> Callable:
        """``fn(module, *args)`` for every agent (or the ``agents`` listed): tensors in the arguments and results
        carry a leading agent axis.

        Non-tensor parts (``None`` fields of a named tuple, numbers) pass through unmapped. The parameters used are
        ``self.params`` at call time, so gradients reach them where they require grad.
        """
        bound = _Bound(self.template, fn)
        pick = (lambda x: x) if agents is None else (lambda x: x[agents])  # noqa: E731
        if self.size == 1 and agents in (None, [0]):
            return lambda *args: self._call_alone(bound, args)

        def mapped(*args):
            arg_leaves, arg_spec = tree_flatten(args)
            out = {}

            def one_agent(params, buffers, tensors):
                state = {f"module.{name}": value for name, value in (params | buffers).items()}
                result = functional_call(bound, state, tree_unflatten(_refill(arg_leaves, tensors), arg_spec))
                out["leaves"], out["spec"] = tree_flatten(result)
                return [x for x in out["leaves"] if isinstance(x, torch.Tensor)]

            params = {name: pick(p) for name, p in self.params.items()}
            buffers = {name: pick(b) for name, b in self.buffers.items()}
            tensors = vmap(one_agent)(params, buffers, [x for x in arg_leaves if isinstance(x, torch.Tensor)])
            return tree_unflatten(_refill(out["leaves"], tensors), out["spec"])

        return mapped

    def _call_alone(self, bound: _Bound, args: tuple):
        """``map`` for a population of one, without ``vmap``'s overhead: the same call on the agent's slice."""
        leaves, spec = tree_flatten(args)
        alone = [x.squeeze(0) if isinstance(x, torch.Tensor) else x for x in leaves]
        state = {f"module.{name}": value[0] for name, value in (self.params | self.buffers).items()}
        out_leaves, out_spec = tree_flatten(functional_call(bound, state, tree_unflatten(alone, spec)))
        return tree_unflatten([x.unsqueeze(0) if isinstance(x, torch.Tensor) else x for x in out_leaves], out_spec)

    def agent_state(self, k: int) -> dict[str, torch.Tensor]:
        """Agent ``k``'s ``state_dict`` (copies, on the CPU): what a checkpoint of a single module would hold."""
        return {name: value[k].detach().cpu().clone() for name, value in (self.params | self.buffers).items()}

    def load_agent_state(self, k: int, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.params) | set(self.buffers)
        if set(state) != expected:
            raise ValueError(f"agent state has keys {sorted(set(state) ^ expected)} that do not fit this policy")
        with torch.no_grad():
            for name, value in (self.params | self.buffers).items():
                value[k] = state[name].to(value.device, value.dtype)

    def agent_module(self, k: int, module: nn.Module) -> nn.Module:
        """``module`` (same architecture) loaded with agent ``k``'s parameters, for code that takes one module."""
        module.load_state_dict(self.agent_state(k))
        return module.to(self.device)


def clip_grad_norms(grads: dict[str, torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale each agent's gradient so its global norm (over all of its parameters) is at most ``max_norm``.

    Same rule as ``torch.nn.utils.clip_grad_norm_`` applied to each agent alone. Returns the norms before clipping.
    """
    squares = sum(g.pow(2).flatten(1).sum(1) for g in grads.values())
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads.values():
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


class AgentAdam:
    """Adam over stacked parameters with a learning rate and a step count per agent; only active agents move.

    The update is ``torch.optim.Adam``'s: ``p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)``. It is
    elementwise, so stacking changes nothing; an inactive agent keeps its parameters and moments untouched.
    """

    def __init__(self, params: dict[str, torch.Tensor], eps: float = 1e-5, betas: tuple[float, float] = (0.9, 0.999)):
        self.params, self.eps, self.betas = params, eps, betas
        size = next(iter(params.values())).shape[0]
        device = next(iter(params.values())).device
        self.steps = torch.zeros(size, dtype=torch.int64, device=device)
        self.exp_avg = {name: torch.zeros_like(p) for name, p in params.items()}
        self.exp_avg_sq = {name: torch.zeros_like(p) for name, p in params.items()}

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor], lr: torch.Tensor, active: torch.Tensor) -> None:
        """One step for the agents where ``active`` (bool ``(S,)``) holds, each with its own ``lr`` ``(S,)``.

        Multi-tensor (``torch._foreach_*``) ops over every parameter, as torch's own Adam; an inactive agent's
        factors are 1 for its moments and 0 for its update, which leaves it exactly as it was.
        """
        beta1, beta2 = self.betas
        on = active.to(lr.dtype)
        self.steps += active.long()
        t = self.steps.to(lr.dtype).clamp(min=1)
        names = list(self.params)
        per_agent = lambda x: [x.view(-1, *([1] * (self.params[n].dim() - 1))) for n in names]  # noqa: E731
        moments, squares = [self.exp_avg[n] for n in names], [self.exp_avg_sq[n] for n in names]
        gradients = [grads[n] for n in names]
        torch._foreach_mul_(moments, per_agent(beta1 * on + (1 - on)))
        torch._foreach_addcmul_(moments, gradients, per_agent((1 - beta1) * on))
        torch._foreach_mul_(squares, per_agent(beta2 * on + (1 - on)))
        torch._foreach_addcmul_(squares, torch._foreach_mul(gradients, gradients), per_agent((1 - beta2) * on))
        denominators = torch._foreach_sqrt(squares)
        torch._foreach_div_(denominators, per_agent((1 - beta2**t).sqrt()))
        torch._foreach_add_(denominators, self.eps)
        updates = torch._foreach_div(moments, denominators)
        torch._foreach_mul_(updates, per_agent(on * lr / (1 - beta1**t)))
        torch._foreach_sub_([self.params[n] for n in names], updates)

    def agent_state(self, k: int) -> dict:
        return {
            "step": int(self.steps[k]),
            "exp_avg": {name: m[k].cpu().clone() for name, m in self.exp_avg.items()},
            "exp_avg_sq": {name: v[k].cpu().clone() for name, v in self.exp_avg_sq.items()},
        }

    def load_agent_state(self, k: int, state: dict) -> None:
        self.steps[k] = state["step"]
        for name in self.params:
            self.exp_avg[name][k] = state["exp_avg"][name].to(self.exp_avg[name].device)
            self.exp_avg_sq[name][k] = state["exp_avg_sq"][name].to(self.exp_avg_sq[name].device)
