"""Input checks shared by the Python API (raises InputError) and the TorchScript module (raises ValueError)."""

import math

import torch


def input_problem(
    positions: torch.Tensor,
    cell: torch.Tensor,
    pbc: torch.Tensor,
    system_index: torch.Tensor,
    cutoff: float,
    max_neighbors: int,
    min_gram: float = 1e-10,
) -> str:
    """Empty string if the inputs are valid, otherwise a message saying what is wrong.

    A periodic cell is degenerate when the squared volume spanned by its unit periodic vectors is below ``min_gram``."""
    if not (cutoff > 0.0 and math.isfinite(cutoff)):
        return f"cutoff must be a positive finite number of Å, got {cutoff}"
    if cutoff > 10.0:  # orb_md.graph.knn.MAX_CUTOFF (TorchScript has no globals)
        return f"cutoff must be at most 10 Å (the tie rule's int64 key), got {cutoff}"
    if max_neighbors < -1 or max_neighbors == 0:
        return f"max_neighbors must be a positive integer or -1 (no cap), got {max_neighbors}"
    if positions.dim() != 2 or positions.shape[1] != 3:
        return f"positions must have shape (N, 3), got {list(positions.shape)}"
    if positions.dtype != torch.float32 and positions.dtype != torch.float64:
        return f"positions must be float32 or float64, got {positions.dtype}"
    if cell.dim() != 3 or cell.shape[1] != 3 or cell.shape[2] != 3:
        return f"cell must have shape (B, 3, 3), got {list(cell.shape)}"
    if cell.dtype != positions.dtype:
        return f"cell dtype {cell.dtype} differs from positions dtype {positions.dtype}"
    if pbc.dtype != torch.bool or pbc.dim() != 2 or pbc.shape[0] != cell.shape[0] or pbc.shape[1] != 3:
        return f"pbc must be a bool tensor of shape ({cell.shape[0]}, 3), got {pbc.dtype} {list(pbc.shape)}"
    if system_index.dtype != torch.int64 or system_index.dim() != 1 or system_index.shape[0] != positions.shape[0]:
        return f"system_index must be int64 of shape ({positions.shape[0]},), got {system_index.dtype} {list(system_index.shape)}"
    devices = [cell.device, pbc.device, system_index.device]
    for device in devices:
        if device != positions.device:
            return f"all inputs must be on {positions.device}, got one on {device}"
    if not bool(torch.isfinite(positions).all()):
        return "positions contain NaN or infinite values"
    if not bool(torch.isfinite(cell).all()):
        return "cell contains NaN or infinite values"
    if system_index.shape[0] > 0:
        if int(system_index.min()) < 0 or int(system_index.max()) >= cell.shape[0]:
            return f"system_index values must lie in [0, {cell.shape[0]})"
        if not bool((system_index[1:] >= system_index[:-1]).all()):
            return "system_index must be sorted (atoms of one system contiguous)"
    rows = cell.to(torch.float64)
    lengths = torch.linalg.vector_norm(rows, dim=2)
    if bool(((lengths == 0.0) & pbc).any()):
        return "a periodic direction has a zero cell vector (degenerate cell)"
    unit = rows / torch.where(pbc, lengths, torch.ones_like(lengths)).unsqueeze(-1) * pbc.unsqueeze(-1)
    gram = unit @ unit.transpose(1, 2) + torch.diag_embed((~pbc).to(torch.float64))
    if bool((torch.linalg.det(gram) < min_gram).any()):
        return "the cell vectors of the periodic directions are (nearly) linearly dependent: zero-volume cell"
    return ""
