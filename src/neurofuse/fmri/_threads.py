"""Keep BLAS on one thread inside the per-volume loops.

The loops multiply small matrices by long ones thousands of times. With OpenBLAS's
default of one thread per core, every product synchronises threads; on a busy machine
(this project's 2-core machines run several jobs) that made head-motion estimation 2.7x
slower (11.4 s vs 4.2 s for 100 volumes of 52x64x56). Snakemake gives each job its own
cores, so one thread per job is also the right default there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """Limit BLAS to one thread within the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
