"""Hand-written backward passes of the backbone MLPs, for forces of frozen models in eager mode.

Conservative forces differentiate the energy with respect to positions only, with every weight frozen.
Autograd's generic backward of an ``MLP + RMSNorm`` keeps the input of every linear layer as well as
every pre-activation, builds the RMSNorm gradient from six primitive ops, and gives each edge chunk's
gathered node rows a gradient of all 2 N rows (zero-filled, then summed into the others). The functions
here run the very same forward ops (bit-identical energies), keep the pre-activations, the RMSNorm input
and the layer input, compute gradients in place, and sum the node-row gradients of all chunks into one
buffer. Where the backward pass is itself differentiated (``create_graph=True``), they rebuild the layer's
autograd graph from its input instead, so second derivatives stay exact.

They apply only where :func:`hand_backward` says so: eager autograd outside training with frozen weights.
TorchScript and torch.compile keep autograd's own backward. Measured in benchmarks/results/model.md.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def hand_backward(module: nn.Module) -> bool:
    """True where the hand-written backward replaces autograd's: gradients wanted, eager (neither torch.compile
    nor a torch.func transform, which need other autograd-function hooks), inference, frozen."""
    return (
        torch.is_grad_enabled()
        and not module.training
        and not torch.compiler.is_compiling()
        and not torch._C._are_functorch_transforms_active()
        and not any(p.requires_grad for p in module.parameters())
    )


def _linear_layers(mlp: nn.Sequential) -> List[nn.Linear]:
    """The linear layers of an :func:`orb_md.model.layers.mlp`, in order (SiLU between each two)."""
    return [layer for layer in mlp if isinstance(layer, nn.Linear)]


def _tail_forward(z: torch.Tensor, tail: Sequence[nn.Linear], norm: nn.RMSNorm) -> tuple[torch.Tensor, List[torch.Tensor]]:
    """``norm(linear_n(silu(... linear_1(silu(z)))))`` and the inputs of every SiLU and of the norm."""
    kept = [z]
    for linear in tail:
        z = F.linear(F.silu(z), linear.weight, linear.bias)
        kept.append(z)
    return F.rms_norm(z, norm.normalized_shape, norm.weight, norm.eps), kept


def _tail_backward(
    grad: torch.Tensor, kept: Sequence[torch.Tensor], tail: Sequence[nn.Linear], norm: nn.RMSNorm
) -> torch.Tensor:
    """Gradient of :func:`_tail_forward`'s output with respect to its input ``z``.

    RMSNorm y = w x r with r = (mean(x^2) + eps)^(-1/2) has dL/dx = r (g w) - x r^3 mean(g w x).
    """
    x = kept[-1]
    eps = torch.finfo(x.dtype).eps if norm.eps is None else norm.eps
    r = torch.rsqrt(x.square().mean(-1, keepdim=True).add_(eps))
    grad_w = grad * norm.weight
    coefficient = (grad_w * x).mean(-1, keepdim=True).mul_(r.pow(3))
    grad = grad_w.mul_(r).sub_(x * coefficient)
    for linear, z in zip(reversed(tail), reversed(kept[:-1])):
        grad = torch.mm(grad, linear.weight)
        torch.ops.aten.silu_backward.grad_input(grad, z, grad_input=grad)
    return grad


class _RowGradient:
    """Gradient of a node-row table, summed over the edge chunks that gathered from it."""

    def __init__(self) -> None:
        self.sum: Optional[torch.Tensor] = None

    def add(self, rows: torch.Tensor, grad: torch.Tensor, shape: torch.Size) -> None:
        """``sum[rows[i]] += grad[i]``."""
        if self.sum is None:
            self.sum = grad.new_zeros(shape)
        self.sum.index_add_(0, rows, grad)

    def take(self) -> Optional[torch.Tensor]:
        total, self.sum = self.sum, None
        return total


class _RowTable(torch.autograd.Function):
    """Identity on a node-row table; its backward hands on the gradient the chunks summed in ``_RowGradient``.

    Chunks return no gradient for the table itself (``None``), so autograd never allocates one per chunk;
    it still runs this backward after all of theirs, because they consume its output.
    """

    @staticmethod
    def forward(ctx: Any, table: torch.Tensor, gradient: _RowGradient) -> torch.Tensor:
        ctx.set_materialize_grads(False)
        ctx.gradient = gradient
        return table.view_as(table)

    @staticmethod
    def backward(ctx: Any, grad: Optional[torch.Tensor]) -> tuple[Optional[torch.Tensor], None]:
        total = ctx.gradient.take()
        if grad is not None:
            total = grad if total is None else total + grad
        return total, None


def row_table(table: torch.Tensor) -> torch.Tensor:
    """``table`` as chunks of :class:`PairMLPFunction` gather from it (unchanged where it needs no gradient)."""
    return _RowTable.apply(table, _RowGradient()) if table.requires_grad else table


def _recomputed_gradients(
    reference: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], wanted: Sequence[bool], grad: torch.Tensor
) -> List[Optional[torch.Tensor]]:
    """Gradients of ``reference(*inputs)`` through autograd's own graph, rebuilt from the inputs.

    Used where the backward pass is itself differentiated (``create_graph=True``: Hessians, force losses),
    which the hand-written backward is not.
    """
    chosen = [x for x, want in zip(inputs, wanted) if want]
    with torch.enable_grad():
        out = reference(*inputs)
    grads = iter(torch.autograd.grad(out, chosen, grad, create_graph=True, allow_unused=True))
    return [next(grads) if want else None for want in wanted]


class PairMLPFunction(torch.autograd.Function):
    """:class:`orb_md.model.layers.PairMLP` on one edge chunk, with frozen weights.

    Forward: x = edges W_e^T + rows[2 s] + rows[2 r + 1] (one ``embedding_bag`` and one fused ``addmm``, as
    the module), then the MLP tail and RMSNorm. Backward: the tail by hand, W_e for the edges, and the
    pre-activation gradient added twice into the row table's shared gradient.
    """

    @staticmethod
    def forward(
        ctx: Any, edges: torch.Tensor, rows: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor,
        module: nn.Module,
    ) -> torch.Tensor:
        first, *tail = _linear_layers(module.mlp)
        edge_weight = first.weight[:, : module.latent]
        sender_rows, receiver_rows = 2 * senders, 2 * receivers + 1
        x = F.embedding_bag(torch.stack([sender_rows, receiver_rows], dim=1), rows, mode="sum")
        # in place: the module's linear(edges, edge_weight, x) copies x and then runs this same addmm
        out, kept = _tail_forward(x.addmm_(edges, edge_weight.t()), tail, module.layer_norm)
        ctx.save_for_backward(edges, rows, senders, receivers, *kept)
        ctx.module, ctx.edge_weight, ctx.tail = module, edge_weight, tail
        ctx.gradient = rows.grad_fn.gradient if rows.requires_grad else None
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        edges, rows, senders, receivers, *kept = ctx.saved_tensors
        if torch.is_grad_enabled():
            def reference(edges: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
                return ctx.module.forward_autograd(edges, rows, senders, receivers, twice_differentiable=True)

            grad_edges, grad_rows = _recomputed_gradients(reference, [edges, rows], ctx.needs_input_grad[:2], grad)
            return grad_edges, grad_rows, None, None, None
        grad = _tail_backward(grad, kept, ctx.tail, ctx.module.layer_norm)
        gradient: Optional[_RowGradient] = ctx.gradient
        if gradient is not None:
            gradient.add(2 * senders, grad, rows.shape)
            gradient.add(2 * receivers + 1, grad, rows.shape)
        grad_edges = torch.mm(grad, ctx.edge_weight) if ctx.needs_input_grad[0] else None
        return grad_edges, None, None, None, None


class MLPNormFunction(torch.autograd.Function):
    """:class:`orb_md.model.layers.MLPAndNorm` (linear, SiLU, ..., linear, RMSNorm) with frozen weights."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, module: nn.Module) -> torch.Tensor:
        first, *tail = _linear_layers(module.mlp)
        out, kept = _tail_forward(F.linear(x, first.weight, first.bias), tail, module.layer_norm)
        ctx.save_for_backward(x, *kept)
        ctx.module, ctx.first, ctx.tail = module, first, tail
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], None]:
        x, *kept = ctx.saved_tensors
        if torch.is_grad_enabled():
            return _recomputed_gradients(ctx.module.forward_autograd, [x], [True], grad)[0], None
        grad = _tail_backward(grad, kept, ctx.tail, ctx.module.layer_norm)
        return torch.mm(grad, ctx.first.weight), None
