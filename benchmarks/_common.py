"""Helpers shared by the benchmark scripts: timing, the machine's float32 matmul rate, result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def best_time(fn, *, repeat: int = 5, min_time: float = 0.2) -> float:
    """Best wall time of ``fn()`` over ``repeat`` rounds (each round repeats until ``min_time`` has passed)."""
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        best = min(best, dt / n)
    return best


def matmul_gflops(m: int = 4096, k: int = 512, n: int = 512, dtype=torch.float32) -> float:
    """Rate of one (m x k) @ (k x n) product on this machine, in GFLOP/s (2 m k n FLOPs)."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    out = torch.empty(m, n, dtype=dtype)
    t = best_time(lambda: torch.mm(a, b, out=out))
    return 2 * m * k * n / t / 1e9


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def write_results(name: str, results: dict, markdown: str) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    j, m = RESULTS / f"{name}.json", RESULTS / f"{name}.md"
    j.write_text(json.dumps(results, indent=2) + "\n")
    m.write_text(markdown)
    return j, m
