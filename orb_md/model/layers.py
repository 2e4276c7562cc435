"""MLPs, normalisers and segment reductions shared by the Orb-v3 backbone and heads.

Module names follow the orb-models checkpoint layout (``mlp.NN-0.weight``, ``layer_norm.weight``,
``normalizer.bn.running_mean``...) so official state dicts load without renaming.
"""

# No ``from __future__ import annotations`` here: TorchScript needs the annotations of the @torch.jit.unused
# methods below as real types, not strings.
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from orb_md.model import frozen


class SiLU(nn.Module):
    """SiLU, in place in eager mode without autograd (in an MLP its input is the fresh output of a linear).

    Never in place under torch.compile: inductor fuses it anyway, and with every MLP's SiLU in place
    torch 2.9.1's inductor returned wrong direct forces (0.48 eV/Å off; tests/test_compile.py).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=not torch.is_grad_enabled() and not torch.compiler.is_compiling())


def mlp(in_dim: int, hidden_dim: int, depth: int, out_dim: int) -> nn.Sequential:
    """Linear layers ``NN-i`` with SiLU between them and none after the last."""
    sizes = [in_dim] + [hidden_dim] * depth + [out_dim]
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(len(sizes) - 1):
        layers[f"NN-{i}"] = nn.Linear(sizes[i], sizes[i + 1])
        layers[f"Act-{i}"] = SiLU() if i < len(sizes) - 2 else nn.Identity()
    return nn.Sequential(layers)


class MLPAndNorm(nn.Module):
    """An MLP followed by RMSNorm whose epsilon is the machine epsilon of the input dtype.

    Frozen models under eager autograd use the hand-written backward of :mod:`orb_md.model.frozen`.
    """

    def __init__(self, in_dim: int, hidden_dim: int, depth: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = mlp(in_dim, hidden_dim, depth, out_dim)
        self.layer_norm = nn.RMSNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and self._hand_backward():
            return self._forward_by_hand(x)
        return self.forward_autograd(x)

    def forward_autograd(self, x: torch.Tensor) -> torch.Tensor:
        """The forward pass as autograd differentiates it."""
        return self.layer_norm(self.mlp(x))

    @torch.jit.unused
    def _hand_backward(self) -> bool:
        return frozen.hand_backward(self)

    @torch.jit.unused
    def _forward_by_hand(self, x: torch.Tensor) -> torch.Tensor:
        return frozen.MLPNormFunction.apply(x, self)


class PairMLP(nn.Module):
    """``MLPAndNorm`` applied to [edge, node[sender], node[receiver]], without building the concatenation.

    The first linear layer of an input concatenation is a sum of three linear maps, so the two
    node parts are projected once per node (N rows) and gathered, instead of once per edge
    (E = k N rows): about a third fewer multiply-adds in message passing. Parameter names are
    those of ``MLPAndNorm`` (``mlp.NN-0.weight`` with all 3 * latent input columns).
    """

    def __init__(self, latent: int, hidden_dim: int, depth: int, out_dim: int) -> None:
        super().__init__()
        self.latent = latent
        self.mlp = mlp(3 * latent, hidden_dim, depth, out_dim)
        self.layer_norm = nn.RMSNorm(out_dim)

    def node_parts(self, nodes: torch.Tensor) -> torch.Tensor:
        """Sender and receiver parts of the first layer (bias included in the sender part), one GEMM.

        Shape (2 N, hidden): row 2 i is node i's sender part, row 2 i + 1 its receiver part.
        """
        first = self.mlp[0]
        n = self.latent
        bias = torch.cat([first.bias, torch.zeros_like(first.bias)])
        weight = torch.cat([first.weight[:, n : 2 * n], first.weight[:, 2 * n :]])
        parts = F.linear(nodes, weight, bias).view(2 * nodes.shape[0], -1)
        if not torch.jit.is_scripting() and self._hand_backward():
            parts = self._row_table(parts)
        return parts

    def forward(
        self, edges: torch.Tensor, node_parts: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor
    ) -> torch.Tensor:
        """Updated edge features, shape (E, out_dim), given :meth:`node_parts`."""
        if not torch.jit.is_scripting() and self._hand_backward():
            return self._forward_by_hand(edges, node_parts, senders, receivers)
        return self.forward_autograd(edges, node_parts, senders, receivers, self.training)

    def forward_autograd(
        self, edges: torch.Tensor, node_parts: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor,
        twice_differentiable: bool = False,
    ) -> torch.Tensor:
        """The forward pass as autograd differentiates it."""
        edge_weight = self.mlp[0].weight[:, : self.latent]
        sender_rows, receiver_rows = 2 * senders, 2 * receivers + 1
        if twice_differentiable:
            # for force and equigrad losses or Hessians: embedding_bag's backward is not differentiable
            x = F.linear(edges, edge_weight) + node_parts.index_select(0, sender_rows)
            x = x + node_parts.index_select(0, receiver_rows)
        else:
            # one pass gathers and sums both node parts; the edge GEMM then accumulates into it
            pairs = torch.stack([sender_rows, receiver_rows], dim=1)
            x = F.embedding_bag(pairs, node_parts, mode="sum")
            if torch.is_grad_enabled():
                # not addmm: TorchScript's autodiff splits it into mm + add, which rounds differently from
                # eager's fused addmm on some CPUs (AMD EPYC: 1e-16), and scripted models must match eager;
                # linear with x as its (2-D) bias is the same fused addmm in both
                x = F.linear(edges, edge_weight, x)
            else:
                x = x.addmm_(edges, edge_weight.t())
        index = 0
        for layer in self.mlp:
            if index > 0:
                x = layer(x)
            index += 1
        return self.layer_norm(x)

    @torch.jit.unused
    def _hand_backward(self) -> bool:
        return frozen.hand_backward(self)

    @torch.jit.unused
    def _row_table(self, parts: torch.Tensor) -> torch.Tensor:
        return frozen.row_table(parts)

    @torch.jit.unused
    def _forward_by_hand(
        self, edges: torch.Tensor, node_parts: torch.Tensor, senders: torch.Tensor, receivers: torch.Tensor
    ) -> torch.Tensor:
        return frozen.PairMLPFunction.apply(edges, node_parts, senders, receivers, self)


class RunningStats(nn.Module):
    """The ``bn`` buffers of orb-models' ScalarNormalizer: a mean and variance learnt in training."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(1))
        self.register_buffer("running_var", torch.ones(1))
        self.register_buffer("num_batches_tracked", torch.zeros(1, dtype=torch.long))


class ScalarNormalizer(nn.Module):
    """Maps network outputs to physical units: ``x * sqrt(var) + mean``."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = RunningStats()

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Physical value of a normalised prediction."""
        return x * torch.sqrt(self.bn.running_var) + self.bn.running_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised value of a physical quantity (used by training losses)."""
        return (x - self.bn.running_mean) / torch.sqrt(self.bn.running_var)


def add_segments(out: torch.Tensor, values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``out[index[i]] += values[i]``, in place (differentiable), returning ``out``.

    index_add, whose backward is a row gather (index_select); under torch.compile scatter_add, because
    inductor's CPU code generation fails on index_add (torch 2.9, dynamic shapes). Both add in index order.
    """
    if torch.compiler.is_compiling():
        expanded = index.view([-1] + [1] * (values.dim() - 1)).expand_as(values)
        return out.scatter_add_(0, expanded, values)
    return out.index_add_(0, index, values)


def segment_sum(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Sum rows of ``values`` that share an ``index``.

    The sums go to a buffer with one spare row: torch 2.9.1's inductor fuses a scatter into a one-row buffer
    with a later gather from it (``mean[system_index]``) and reads the row before the sum is complete, which
    gave wrong direct forces for single systems under torch.compile (tests/test_compile.py)."""
    shape = [num_segments + 1] + list(values.shape[1:])
    return add_segments(torch.zeros(shape, dtype=values.dtype, device=values.device), values, index)[:num_segments]


def segment_mean(
    values: torch.Tensor, index: torch.Tensor, counts: torch.Tensor
) -> torch.Tensor:
    """Mean of rows of ``values`` per segment; empty segments give zero."""
    total = segment_sum(values, index, counts.shape[0])
    denom = counts.clamp(min=1).to(values.dtype)
    return total / denom.view([-1] + [1] * (values.dim() - 1))
