"""Node features with a halo exchange between message-passing layers (``exchange`` mode).

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


def node_features(
    network, data, atomic_numbers: torch.Tensor, vectors: torch.Tensor, senders: torch.Tensor,
    receivers: torch.Tensor, nlocal: int, total_charge: torch.Tensor | None = None, spin: torch.Tensor | None = None,
) -> torch.Tensor:
    """Final features (nlocal, latent) of the local atoms; rows = LAMMPS atoms, local first, then ghosts.

    ``senders`` must all be local rows. Every rank must call this for every force call (the exchanges
    are collective). ``total_charge``/``spin`` (shape (1,), OMol models) are the whole system's: every row,
    ghost rows too, gets the same conditioning vector before each layer, as in the single-process network."""
    system = torch.zeros(atomic_numbers.shape[0], dtype=torch.long, device=atomic_numbers.device)
    nodes, edges, sender_chunks, receiver_chunks, gates, condition = network.encode(
        atomic_numbers, vectors, senders, receivers, system, total_charge, spin
    )
    layers = list(network.gnn_stacks)
    for index, layer in enumerate(layers):
        nodes = layer.conditioned(nodes, condition)
        sent, received, edges = layer.messages(nodes, edges, sender_chunks, receiver_chunks, gates)
        received = ReverseExchange.apply(received, data)
        local = layer.update_nodes(nodes[:nlocal], received[:nlocal], sent[:nlocal])
        if index == len(layers) - 1:
            return local
        ghosts = torch.zeros(nodes.shape[0] - nlocal, local.shape[1], dtype=local.dtype, device=local.device)
        nodes = ForwardExchange.apply(torch.cat([local, ghosts]), data)
    return nodes[:nlocal]
