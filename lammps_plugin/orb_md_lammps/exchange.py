"""LAMMPS's halo exchange between message-passing layers (``exchange`` mode), for the model's layer-wise split
(:meth:`orb_md.model.orb.OrbModel.owned_node_features`).

Each rank keeps only the edges whose sender it owns (the pairs of its local atoms: their whole 6 Å shell
is in LAMMPS's list, so the k-nearest choice is exact) and rows for all its local and ghost atoms. Per
layer: the edge update reads ghost node features (filled from their owners by ``forward_exchange``); the
messages gated to receivers are summed per receiver row and ``reverse_exchange`` adds ghost rows into their
owners' rows, wherever those live; each rank then updates its local nodes. Both exchanges are
``torch.autograd.Function``s whose backward is the other exchange, so conservative forces come out exact
too. The normal ghost cutoff (6 Å + skin) suffices, and each rank does the work of its own atoms.

``data.forward_exchange``/``reverse_exchange`` are the ML-IAP KOKKOS coupling's, added to the plain coupling
by lammps_plugin/patches/mliap-halo-exchange.patch; that coupling reads host memory, so rows of a model on a
GPU are exchanged through a host copy.
"""

from __future__ import annotations

import torch


def _exchanged(rows: torch.Tensor, data, forward: bool) -> torch.Tensor:
    """A new tensor on ``rows``'s device: ``rows`` after LAMMPS's forward (or reverse) exchange on the host."""
    host = rows.detach().to("cpu", copy=True).contiguous()
    (data.forward_exchange if forward else data.reverse_exchange)(host, host, host.shape[1])
    return host.to(rows.device)


class ForwardExchange(torch.autograd.Function):
    """Ghost rows := their owners' rows. Backward: ghost gradients summed into the owners'."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, data) -> torch.Tensor:
        ctx.data = data
        return _exchanged(rows, data, forward=True)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _exchanged(grad, ctx.data, forward=False), None


class ReverseExchange(torch.autograd.Function):
    """Owner rows += their ghost rows; ghost rows := 0. Backward: ghost gradients := their owners'."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor, data) -> torch.Tensor:
        ctx.data = data
        return _exchanged(rows, data, forward=False)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _exchanged(grad, ctx.data, forward=True), None


def summing_into_owners(data):
    """``sum_into_owners`` of :meth:`orb_md.model.orb.OrbModel.owned_node_features`: LAMMPS's reverse exchange."""
    return lambda rows: ReverseExchange.apply(rows, data)


def copying_to_ghosts(data):
    """``copy_to_ghosts`` of :meth:`orb_md.model.orb.OrbModel.owned_node_features`: LAMMPS's forward exchange."""
    return lambda rows: ForwardExchange.apply(rows, data)
