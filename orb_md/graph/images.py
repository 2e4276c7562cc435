"""Periodic images: fractional frames, wrapping into the cell and the image range a cutoff needs.

Non-periodic directions are masked out of the cell, so their rows may be zero or arbitrary.
Fractional coordinates along periodic directions come from the pseudo-inverse of the masked cell;
they are the coordinates of the projection of a point onto the periodic sub-lattice.
"""

import torch


def periodic_cell(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """(B,3,3) cell with the rows of non-periodic directions set to zero."""
    return cell * pbc.unsqueeze(-1).to(cell.dtype)


def dual_vectors(cell: torch.Tensor, pbc: torch.Tensor) -> torch.Tensor:
    """(B,3,3) matrix D with fractional = position @ D along periodic directions (column i = reciprocal vector i)."""
    return torch.linalg.pinv(periodic_cell(cell, pbc))


def image_range(cell: torch.Tensor, pbc: torch.Tensor, radius: float) -> torch.Tensor:
    """(B,3) int64: largest |n_i| of lattice translations that can bring a wrapped atom within ``radius``.

    It is ceil(radius / plane spacing) per periodic direction (plane spacing = 1/|reciprocal vector|), 0 otherwise.
    """
    inverse_spacing = torch.linalg.vector_norm(dual_vectors(cell, pbc), dim=1)
    return torch.ceil(radius * inverse_spacing).to(torch.int64) * pbc.to(torch.int64)


def wrap_into_cell(
    positions: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor, system_index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wrap positions into the cell along periodic directions.

    Returns (wrapped, fractional, offsets) with wrapped = positions − offsets @ cell, fractional the
    periodic fractional coordinates of ``wrapped`` (≈ [0, 1) along periodic directions) and offsets (N,3) int64.
    """
    dual = dual_vectors(cell, pbc)[system_index]
    fractional = torch.bmm(positions.unsqueeze(1), dual).squeeze(1)
    offsets = torch.floor(fractional) * pbc[system_index].to(positions.dtype)
    wrapped = positions - torch.bmm(offsets.unsqueeze(1), periodic_cell(cell, pbc)[system_index]).squeeze(1)
    return wrapped, fractional - offsets, offsets.to(torch.int64)


def lattice_translations(cell: torch.Tensor, shifts: torch.Tensor, system_index: torch.Tensor) -> torch.Tensor:
    """Cartesian translations shifts @ cell[system_index], computed row by row (same rounding on every path)."""
    s = shifts.to(cell.dtype)
    return (
        s[:, 0:1] * cell[:, 0][system_index]
        + s[:, 1:2] * cell[:, 1][system_index]
        + s[:, 2:3] * cell[:, 2][system_index]
    )


def inverse_cell(cell: torch.Tensor) -> torch.Tensor:
    """Inverse of a (3,3) cell by cross products: column i is reciprocal vector i (fractional = position @ inverse).

    No LAPACK call, hence no host synchronisation on CUDA (``torch.linalg.inv`` checks its result on the host).
    A singular cell gives inf/NaN entries."""
    a, b, c = cell[0], cell[1], cell[2]
    bc, ca, ab = torch.linalg.cross(b, c), torch.linalg.cross(c, a), torch.linalg.cross(a, b)
    volume = torch.dot(a, bc)
    return torch.stack([bc, ca, ab], dim=1) / volume
