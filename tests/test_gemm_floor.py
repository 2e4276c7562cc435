"""benchmarks/bench_gemm_floor.py counts the matrix-multiply work of a call correctly."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.benchmark_scripts import load_benchmark


def test_profiled_gemm_work_is_two_m_n_k_per_product():
    """Each kind of product the models use (linear with bias, mm, in-place addmm, bmm), counted once, and
    elementwise work not at all."""
    bench = load_benchmark("bench_gemm_floor")
    x, w, b = torch.randn(30, 20), torch.randn(10, 20), torch.randn(10)
    acc, a3, b3 = torch.randn(30, 10), torch.randn(4, 5, 6), torch.randn(4, 6, 7)

    def work():
        F.linear(x, w, b)                 # addmm: 30 x 20 by 20 x 10
        torch.mm(x, w.t())                # mm: the same product
        acc.clone().addmm_(x, w.t())      # addmm_
        torch.bmm(a3, b3)                 # 4 products of 5 x 6 by 6 x 7
        F.silu(x)

    flop, seconds, calls = bench.profile_gemms(work)
    assert calls == 4
    assert flop == 3 * 2 * 30 * 20 * 10 + 2 * 4 * 5 * 6 * 7
    assert seconds > 0
