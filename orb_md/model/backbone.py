"""The Orb-v3 graph network: atom embedding, encoder, attention message passing, decoder."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn

from orb_md.model.config import OrbConfig
from orb_md.model.conditioning import ChargeSpinConditioner
from orb_md.model.edge_features import BesselBasis, edge_features, polynomial_envelope
from orb_md.model.layers import PairMLP, mlp, mlp_and_norm, segment_sum

NUM_ELEMENTS = 118


class AtomEmbedding(nn.Module):
    """Learnt vector per atomic number (row Z; row 0 unused)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(NUM_ELEMENTS + 1, dim)

    def forward(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Embeddings of shape (N, dim)."""
        return self.embeddings(atomic_numbers)


class Encoder(nn.Module):
    """MLP + RMSNorm on node embeddings and on geometric edge features."""

    def __init__(self, node_in: int, edge_in: int, config: OrbConfig) -> None:
        super().__init__()
        width, depth, latent = config.mlp_hidden_dim, config.mlp_depth, config.latent_dim
        self._node_fn = mlp_and_norm(node_in, width, depth, latent)
        self._edge_fn = mlp_and_norm(edge_in, width, depth, latent)

    def forward(
        self, nodes: torch.Tensor, edges: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Latent node and edge features."""
        return self._node_fn(nodes), self._edge_fn(edges)


class AttentionInteraction(nn.Module):
    """One message-passing step with sigmoid attention gates scaled by the distance envelope.

    Edges see [edge, sender, receiver]; nodes see [node, received, sent]; both are residual.
    """

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        latent, width, depth = config.latent_dim, config.mlp_hidden_dim, config.mlp_depth
        self._node_mlp = mlp_and_norm(3 * latent, width, depth, latent)
        self._edge_mlp = PairMLP(latent, width, depth, latent)
        self._receive_attn = nn.Linear(latent, 1)
        self._send_attn = nn.Linear(latent, 1)
        self._cond_node_proj = nn.Linear(latent, latent) if config.charge_spin else None

    def forward(
        self,
        nodes: torch.Tensor,
        edges: torch.Tensor,
        senders: torch.Tensor,
        receivers: torch.Tensor,
        envelope: torch.Tensor,
        condition: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Updated (nodes, edges)."""
        proj = self._cond_node_proj
        if proj is not None and condition is not None:
            nodes = nodes + proj(condition)
        receive_gate = torch.sigmoid(self._receive_attn(edges)) * envelope
        send_gate = torch.sigmoid(self._send_attn(edges)) * envelope
        new_edges = self._edge_mlp(edges, nodes, senders, receivers)
        n = nodes.shape[0]
        sent = segment_sum(new_edges * send_gate, senders, n)
        received = segment_sum(new_edges * receive_gate, receivers, n)
        new_nodes = self._node_mlp(torch.cat([nodes, received, sent], dim=1))
        return nodes + new_nodes, edges + new_edges


class Decoder(nn.Module):
    """Per-node MLP kept from pre-training; its output is unused by the Orb-v3 heads."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
        self.node_fn = nn.Sequential()
        self.node_fn.add_module(
            "mlp", mlp(config.latent_dim, config.mlp_hidden_dim, config.mlp_depth, 3)
        )


class GraphNetwork(nn.Module):
    """Node features after message passing, from atomic numbers and edge vectors."""

    def __init__(self, config: OrbConfig) -> None:
        super().__init__()
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
        condition: Optional[torch.Tensor] = None
        conditioner = self.conditioner
        if conditioner is not None:
            if total_charge is None or spin is None:
                raise ValueError("this model needs the total charge and spin multiplicity")
            condition = conditioner(total_charge, spin, vectors.dtype)[system_index]
        lengths = torch.linalg.vector_norm(vectors, dim=1)
        envelope = polynomial_envelope(lengths, self.cutoff)
        edges = edge_features(vectors, lengths, self.rbf_transform(lengths), envelope)
        nodes, edges = self._encoder(self.atom_emb(atomic_numbers), edges)
        envelope = envelope[:, None]
        for layer in self.gnn_stacks:
            nodes, edges = layer(nodes, edges, senders, receivers, envelope, condition)
        return nodes
