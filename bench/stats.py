"""Small statistics shared by the benchmarks."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def workload_args(
    description: str,
    levels: str,
    extra: Callable[[argparse.ArgumentParser], object] | None = None,
) -> argparse.Namespace:
    """The options both benchmarks take: levels, turns, think time, Redis; `extra` adds more."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    parser.add_argument("--levels", default=levels)
    parser.add_argument("--turns", type=int, default=3, help="bursts per level; paced turns")
    parser.add_argument("--think", type=float, default=5.0, help="mean seconds between turns")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    args = parser.parse_args()
    args.levels = [int(n) for n in args.levels.split(",")]
    return args


def print_report(burst: str, paced: str, footer: str) -> None:
    """Both workloads' tables, as the README shows them."""
    print(f"{burst}\n\n{paced}\n\n({footer})")
