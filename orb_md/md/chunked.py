"""Memory-bounded inference for large systems: the backbone evaluated in chunks of edges and nodes.

Prototype of a change proposed for :mod:`orb_md.model.backbone` (see ``benchmarks/results/batch.md``).
Without autograd (direct models), every Orb-v3 edge/node MLP is row-wise, so evaluating it on slices of
rows and scattering the results gives the same numbers as one call (up to BLAS summation order) while the
peak memory holds only one slice of the 1024-wide hidden activations instead of E x 1024 floats
(8 GB per activation at 2M edges in float32). Conservative models need autograd through every
activation, so chunking does not help them; :func:`chunked_inference` leaves them alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from orb_md.model.backbone import GraphNetwork
from orb_md.model.edge_features import edge_features, polynomial_envelope
from orb_md.model.orb import OrbModel

DEFAULT_EDGE_CHUNK = 65536


class ChunkedGraphNetwork(nn.Module):
    """Wraps a :class:`GraphNetwork`; same outputs, activations bounded by ``chunk`` rows at a time."""

    def __init__(self, inner: GraphNetwork, chunk: int = DEFAULT_EDGE_CHUNK) -> None:
        super().__init__()
        self.inner = inner
        self.rbf_transform = inner.rbf_transform  # OrbModel.forward reads the dtype from here
        self.chunk = int(chunk)

    def forward(
        self,
        atomic_numbers: torch.Tensor,
        vectors: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        system_index: torch.Tensor,
        total_charge: Optional[torch.Tensor],
        spin: Optional[torch.Tensor],
    ) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.inner(atomic_numbers, vectors, senders, receivers, system_index, total_charge, spin)
        net, step = self.inner, self.chunk
        condition = None
        if net.conditioner is not None:
            if total_charge is None or spin is None:
                raise ValueError("this model needs the total charge and spin multiplicity")
            condition = net.conditioner(total_charge, spin, vectors.dtype)[system_index]
        n_edges = vectors.shape[0]
        nodes = _rows(net._encoder._node_fn, net.atom_emb(atomic_numbers), step)
        latent = nodes.shape[1]
        edges = torch.empty(n_edges, latent, dtype=vectors.dtype, device=vectors.device)
        envelope = torch.empty(n_edges, 1, dtype=vectors.dtype, device=vectors.device)
        for lo in range(0, n_edges, step):
            v = vectors[lo:lo + step]
            lengths = torch.linalg.vector_norm(v, dim=1)
            env = polynomial_envelope(lengths, net.cutoff)
            edges[lo:lo + step] = net._encoder._edge_fn(edge_features(v, lengths, net.rbf_transform(lengths), env))
            envelope[lo:lo + step, 0] = env
        for layer in net.gnn_stacks:
            if layer._cond_node_proj is not None and condition is not None:
                nodes = nodes + layer._cond_node_proj(condition)
            edge_mlp = layer._edge_mlp
            projected = _node_projections(edge_mlp, nodes)
            sent = torch.zeros_like(nodes)
            received = torch.zeros_like(nodes)
            for lo in range(0, n_edges, step):
                e = edges[lo:lo + step]
                s, r, env = senders[lo:lo + step], receivers[lo:lo + step], envelope[lo:lo + step]
                receive_gate = torch.sigmoid(layer._receive_attn(e)) * env
                send_gate = torch.sigmoid(layer._send_attn(e)) * env
                new = _edge_update(edge_mlp, e, nodes, s, r, projected)
                sent.index_add_(0, s, new * send_gate)
                received.index_add_(0, r, new * receive_gate)
                e.add_(new)  # residual, in place: rows of this chunk are not read again in this layer
            update = _rows(layer._node_mlp, torch.cat([nodes, received, sent], dim=1), step)
            nodes = nodes + update
        return nodes


def _node_projections(edge_mlp: nn.Module, nodes: torch.Tensor) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """For a PairMLP edge MLP (first layer split into edge/sender/receiver parts): the per-node parts, once."""
    if not hasattr(edge_mlp, "latent"):
        return None
    weight, n = edge_mlp.mlp[0].weight, edge_mlp.latent
    return F.linear(nodes, weight[:, n:2 * n]), F.linear(nodes, weight[:, 2 * n:])


def _edge_update(
    edge_mlp: nn.Module,
    edges: torch.Tensor,
    nodes: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    projected: Optional[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    """The edge MLP of one chunk, for either backbone layout (concatenation or PairMLP)."""
    if projected is None:
        return edge_mlp(torch.cat([edges, nodes[senders], nodes[receivers]], dim=1))
    first = edge_mlp.mlp[0]
    x = F.linear(edges, first.weight[:, : edge_mlp.latent], first.bias) + projected[0][senders] + projected[1][receivers]
    for index, layer in enumerate(edge_mlp.mlp):
        if index > 0:
            x = layer(x)
    return edge_mlp.layer_norm(x)


def _rows(fn: nn.Module, x: torch.Tensor, step: int) -> torch.Tensor:
    if x.shape[0] <= step:
        return fn(x)
    return torch.cat([fn(x[lo:lo + step]) for lo in range(0, x.shape[0], step)])


@contextlib.contextmanager
def chunked_inference(model: OrbModel, chunk: int = DEFAULT_EDGE_CHUNK) -> Iterator[OrbModel]:
    """Within the block, ``model`` (a direct model, evaluated without autograd) runs chunked."""
    if model.conservative or chunk <= 0:
        yield model
        return
    inner = model.model
    model.model = ChunkedGraphNetwork(inner, chunk)  # type: ignore[assignment]
    try:
        yield model
    finally:
        model.model = inner
