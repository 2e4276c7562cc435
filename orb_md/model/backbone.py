"""The Orb-v3 graph network: atom embedding, encoder, attention message passing, decoder."""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from orb_md.model.conditioning import ChargeSpinConditioner
from orb_md.model.config import OrbConfig
from orb_md.model.edge_features import BesselBasis, edge_features, polynomial_envelope
from orb_md.model.layers import MLPAndNorm, PairMLP, add_segments, mlp

NUM_ELEMENTS = 118
CPU_EDGE_CHUNK = 2048  # edges per edge-MLP call on the CPU; chosen by benchmarks/bench_model.py --chunks


class AtomEmbedding(nn.Module):
    """Learnt vector per atomic number (row Z; row 0 unused)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(NUM_ELEMENTS + 1, dim)

    def forward(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Embeddings of shape (N, dim)."""
        return self.embeddings(atomic_numbers)


class Encoder(nn.Module):
    """MLP + RMSNorm on node embeddings (``_node_fn``) and on geometric edge features (``_edge_fn``)."""

    def __init__(self, node_in: int, edge_in: int, config: OrbConfig) -> None:
        super().__init__()
        width, depth, latent = config.mlp_hidden_dim, config.mlp_depth, config.latent_dim
        self._node_fn = MLPAndNorm(node_in, width, depth, latent)
        self._edge_fn = MLPAndNorm(edge_in, width, depth, latent)


class AttentionInteraction(nn.Module):
    """One message-passing step with sigmoid attention gates scaled by the distance envelope.

    Edges see [edge, sender, receiver]; nodes see [node, received, sent]; both are residual.
    """

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        latent, width, depth = config.latent_dim, config.mlp_hidden_dim, config.mlp_depth
        self._node_mlp = MLPAndNorm(3 * latent, width, depth, latent)
        self._edge_mlp = PairMLP(latent, width, depth, latent)
        self._receive_attn = nn.Linear(latent, 1)
        self._send_attn = nn.Linear(latent, 1)
        self._cond_node_proj = nn.Linear(latent, latent) if config.charge_spin else None

    def forward(
        self,
        nodes: torch.Tensor,
        edges: List[torch.Tensor],
        senders: List[torch.Tensor],
        receivers: List[torch.Tensor],
        envelope: List[torch.Tensor],
        condition: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Updated (nodes, edges); edges, their endpoints and envelopes come as matching chunks.

        Without autograd the edge chunks are updated in place (this layer's input edges are not used again).
        """
        nodes = self.conditioned(nodes, condition)
        sent, received, updated = self.messages(nodes, edges, senders, receivers, envelope)
        return self.update_nodes(nodes, received, sent), updated

    def conditioned(self, nodes: torch.Tensor, condition: Optional[torch.Tensor]) -> torch.Tensor:
        """Nodes plus this layer's projection of the per-atom charge/spin condition (OMol models; others: as
        given). The sum is also the residual of the node update."""
        proj = self._cond_node_proj
        if proj is not None and condition is not None:
            return nodes + proj(condition)
        return nodes

    def messages(
        self,
        nodes: torch.Tensor,
        edges: List[torch.Tensor],
        senders: List[torch.Tensor],
        receivers: List[torch.Tensor],
        envelope: List[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor]]:
        """(sent, received, updated edges): the edge update and its gated messages summed per sender and per
        receiver, as (N, latent) rows. The two halves of a layer are separate so that an engine can exchange
        the rows of atoms owned by other processes in between (orb_md_lammps)."""
        node_parts = self._edge_mlp.node_parts(nodes)
        attn_weight = torch.cat([self._send_attn.weight, self._receive_attn.weight])
        attn_bias = torch.cat([self._send_attn.bias, self._receive_attn.bias])
        sent = torch.zeros_like(nodes)
        received = torch.zeros_like(nodes)
        updated: List[torch.Tensor] = []
        for i in range(len(edges)):
            e, s, r = edges[i], senders[i], receivers[i]
            new = self._edge_mlp(e, node_parts, s, r)
            gates = torch.sigmoid(F.linear(e, attn_weight, attn_bias)) * envelope[i]
            # accumulated in place: a fresh (N, latent) sum per chunk would cost O(N) per chunk, O(N^2) in all
            add_segments(sent, new * gates[:, 0:1], s)
            add_segments(received, new * gates[:, 1:2], r)
            if torch.is_grad_enabled():
                updated.append(e + new)
            else:
                updated.append(e.add_(new))
        return sent, received, updated

    def update_nodes(self, nodes: torch.Tensor, received: torch.Tensor, sent: torch.Tensor) -> torch.Tensor:
        """Residual node update from the summed messages."""
        return nodes + self._node_mlp(torch.cat([nodes, received, sent], dim=1))


class Decoder(nn.Module):
    """Per-node MLP kept from pre-training; its output is unused by the Orb-v3 heads."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        self.node_fn = nn.Sequential()
        self.node_fn.add_module(
            "mlp", mlp(config.latent_dim, config.mlp_hidden_dim, config.mlp_depth, 3)
        )


class GraphNetwork(nn.Module):
    """Node features after message passing, from atomic numbers and edge vectors.

    Edge MLPs run on at most ``edge_chunk`` edges at a time (0: ``CPU_EDGE_CHUNK`` on the CPU, all
    edges at once on other devices). On the CPU this is a speed choice: a chunk's edge_chunk x 1024
    hidden activations stay in cache and their memory is reused, where whole-graph activations are fresh
    allocations the kernel must page in on every call (measured in benchmarks/results/model.md). With
    autograd off (direct models) it also bounds memory: a 100k-atom direct-20 graph has 2M edges, 8 GB
    per unchunked float32 activation. With autograd on, every chunk's activations are kept for the
    backward pass, so memory is that of the whole graph, and the default is at most 16 chunks (each
    chunk's backward costs O(N)).
    """

    def __init__(self, config: OrbConfig, edge_chunk: int = 0) -> None:
        super().__init__()
        self.edge_chunk = edge_chunk
        self.cpu_edge_chunk = CPU_EDGE_CHUNK
        self.cutoff = config.cutoff
        self.rbf_transform = BesselBasis(config.cutoff, config.num_bessel)
        self.atom_emb = AtomEmbedding(config.latent_dim)
        self.conditioner = ChargeSpinConditioner(config.latent_dim) if config.charge_spin else None
        edge_in = config.num_bessel * (config.sh_lmax + 1) ** 2
        self._encoder = Encoder(config.latent_dim, edge_in, config)
        self.gnn_stacks = nn.ModuleList(
            [AttentionInteraction(config) for _ in range(config.num_message_passing)]
        )
        self._decoder = Decoder(config)

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
        """Final node features, shape (N, latent_dim)."""
        nodes, edges, sender_chunks, receiver_chunks, gates, condition = self.encode(
            atomic_numbers, vectors, senders, receivers, system_index, total_charge, spin
        )
        for layer in self.gnn_stacks:
            nodes, edges = layer(nodes, edges, sender_chunks, receiver_chunks, gates, condition)
        return nodes

    def encode(
        self,
        atomic_numbers: torch.Tensor,
        vectors: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        system_index: torch.Tensor,
        total_charge: Optional[torch.Tensor],
        spin: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor], List[torch.Tensor], List[torch.Tensor], Optional[torch.Tensor]]:
        """Encoded (nodes, edge chunks, sender chunks, receiver chunks, envelope chunks, condition): the input
        of the first message-passing layer."""
        condition: Optional[torch.Tensor] = None
        conditioner = self.conditioner
        if conditioner is not None:
            if total_charge is None or spin is None:
                raise ValueError("this model needs the total charge and spin multiplicity")
            condition = conditioner(total_charge, spin, vectors.dtype)[system_index]
        n_edges = vectors.shape[0]
        chunk = self.edge_chunk
        if chunk <= 0:
            chunk = self.cpu_edge_chunk if vectors.device.type == "cpu" else max(n_edges, 1)
            if torch.is_grad_enabled():
                # each chunk's backward writes a gradient of all 2 N node parts: at most 16 chunks
                chunk = max(chunk, (n_edges + 15) // 16)
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        envelope = polynomial_envelope(lengths, self.cutoff)
        radial = self.rbf_transform(lengths)
        # chunks, not slices (under autograd a slice's backward writes a zero tensor of all E rows),
        # passed between layers as lists (no concatenation, and none in the backward pass)
        vector_chunks, length_chunks = vectors.split(chunk), lengths.split(chunk)
        radial_chunks, envelope_chunks = radial.split(chunk), envelope.split(chunk)
        edges: List[torch.Tensor] = []
        gates: List[torch.Tensor] = []
        for i in range(len(vector_chunks)):
            features = edge_features(vector_chunks[i], length_chunks[i], radial_chunks[i], envelope_chunks[i])
            edges.append(self._encoder._edge_fn(features))
            gates.append(envelope_chunks[i][:, None])
        sender_chunks, receiver_chunks = list(senders.split(chunk)), list(receivers.split(chunk))
        nodes = self._encoder._node_fn(self.atom_emb(atomic_numbers))
        return nodes, edges, sender_chunks, receiver_chunks, gates, condition
