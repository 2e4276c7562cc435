"""Hyper-parameters of the Orb-v3 architecture and the registry of released models."""

from __future__ import annotations

import dataclasses
from typing import Literal

from orb_md.errors import InputError

ForceKind = Literal["direct", "conservative"]

WEIGHTS_URL = "https://orbitalmaterials-public-models.s3.us-west-1.amazonaws.com/forcefields/"


@dataclasses.dataclass(frozen=True)
class OrbConfig:
    """Everything needed to build one Orb-v3 network (weights excluded).

    The defaults are the released Orb-v3 architecture (25.6M parameters): latent width 256,
    backbone MLPs 1024 wide with 2 hidden layers, heads 256 wide with 1 hidden layer,
    5 message-passing steps, 8 Bessel bases times spherical harmonics up to l=3, 6 Å cutoff.
    ``has_stress`` says whether a direct model has a stress head; conservative models always
    give stress by differentiating the energy with respect to strain.
    """

    name: str = "orb-v3-direct-20-omat"
    kind: ForceKind = "direct"
    max_neighbors: int = 20
    has_stress: bool = True
    charge_spin: bool = False
    cutoff: float = 6.0
    latent_dim: int = 256
    mlp_hidden_dim: int = 1024
    mlp_depth: int = 2
    head_hidden_dim: int = 256
    head_depth: int = 1
    num_message_passing: int = 5
    num_bessel: int = 8
    sh_lmax: int = 3
    num_confidence_bins: int = 50
    weights_file: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("direct", "conservative"):
            raise InputError(f"kind must be 'direct' or 'conservative', got {self.kind!r}")
        if self.max_neighbors < 1:
            raise InputError(f"max_neighbors must be positive, got {self.max_neighbors}")
        if self.cutoff <= 0:
            raise InputError(f"cutoff must be positive, got {self.cutoff}")

    @property
    def weights_url(self) -> str | None:
        """Official download address of the released weights, if any."""
        return None if self.weights_file is None else WEIGHTS_URL + self.weights_file

    def replace(self, **changes: object) -> OrbConfig:
        """A copy with some fields changed (e.g. a reduced width for fast tests)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _released() -> dict[str, OrbConfig]:
    models: dict[str, OrbConfig] = {}
    for kind in ("conservative", "direct"):
        for k_name, k in (("20", 20), ("inf", 120)):
            for data in ("omat", "mpa"):
                name = f"orb-v3-{kind}-{k_name}-{data}"
                models[name] = OrbConfig(
                    name=name,
                    kind=kind,  # type: ignore[arg-type]
                    max_neighbors=k,
                    weights_file=f"orb-v3/{name}-20250404.ckpt",
                )
        name = f"orb-v3-{kind}-omol"
        models[name] = OrbConfig(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            max_neighbors=120,
            has_stress=kind == "conservative",  # the direct OMol model has no stress head
            charge_spin=True,
            weights_file=f"{name}-20250820.ckpt",
        )
    return models


RELEASED_MODELS: dict[str, OrbConfig] = _released()
"""The released Orb-v3 models by their orb-models names."""

DEMO_MODEL = OrbConfig(
    name="orb-md-demo-v1",
    kind="conservative",
    max_neighbors=120,
    latent_dim=32,
    mlp_hidden_dim=64,
    head_hidden_dim=32,
    num_message_passing=3,
)
"""The bundled offline demo model: the Orb-v3 conservative-inf architecture at reduced width and depth,
trained by :mod:`orb_md.training.recipe` on EMT metals and amber14/TIP3P water and peptides."""

BIO_MODEL = dataclasses.replace(DEMO_MODEL, name="orb-md-demo-bio-v1")
"""The bundled biomolecular demo model: :data:`DEMO_MODEL` fine-tuned on solvated peptide windows and water
(thermal and distorted frames) by :func:`orb_md.training.recipe.train_bio`."""

BUNDLED_MODELS: dict[str, OrbConfig] = {DEMO_MODEL.name: DEMO_MODEL, BIO_MODEL.name: BIO_MODEL}
"""Models whose weights ship inside the orb_md package (``orb_md/weights/<name>.ckpt``)."""


def model_config(name: str) -> OrbConfig:
    """The configuration of a released or bundled model, with a clear error for unknown names."""
    known = RELEASED_MODELS | BUNDLED_MODELS
    try:
        return known[name]
    except KeyError:
        raise InputError(f"unknown Orb-v3 model {name!r}; known models: {', '.join(sorted(known))}") from None
