"""glibc malloc settings for a process that allocates and frees megabyte batches all day.

Every committed batch (a few thousand records, their encoded lines, the outbox payload, the file
sink's write) is allocated and freed again a moment later. With glibc's defaults, freed memory goes
back to the kernel as soon as 128 KiB lie free at the top of the heap, and large blocks are mmap'd
and unmapped each time, so the next batch faults the same pages in again. Keeping up to 64 MiB of
freed heap mapped, and serving blocks below 32 MiB (glibc's maximum for this setting) from the heap,
measured ~100,000 → ~150,000 syslog messages per CPU-second on the TCP → file path
(bench/syslog.py, docs/performance.md). The price is that much freed memory staying resident.

Only glibc has ``mallopt``; elsewhere, or when the operator set ``MALLOC_TRIM_THRESHOLD_`` /
``MALLOC_MMAP_THRESHOLD_`` in the environment, nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES", "tune_malloc"]

TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """Apply the settings above; ``True`` when glibc accepted them."""
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    )
