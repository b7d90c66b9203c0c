"""Malloc settings for a long evaluation loop (glibc only; a no-op elsewhere).

A run allocates and frees the same few sizes of tensor buffers for every batch (decoded
images, stacked batches, the SSIM filter's moments: 0.05-2 MiB at 64x64). With glibc's
defaults (the GNU C Library manual, "Malloc Tunable Parameters"; ``mallopt(3)``), a buffer
above the mmap threshold (128 KiB at first, raised as mapped buffers are freed) is mapped
and unmapped per allocation, and free memory above the trim threshold at the top of the
heap is returned to the kernel; either way the next batch faults the pages in again.
Measured on 10,000 samples of ``nvsbench run`` with ``identity`` (64x64, batch 8, 1 thread):
2.9 M minor page faults and 17.0 s end to end; with both thresholds raised once at start-up,
0.10 M faults (0.08 M of them are the imports) and 11.9 s. Both are needed: with the mmap
threshold alone, frees still trim the heap; with the trim threshold alone, large buffers
are still mapped per allocation. Setting them also turns off glibc's dynamic adjustment of
the mmap threshold. Large temporaries now come from the heap and their pages stay with the
process: peak RSS went from 741 to 838 MiB while the bootstrap drew up to 92 MiB at once,
and is 704 MiB since that is capped at 23 MiB (:func:`bench.metrics.stats.bootstrap_ci`).
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: ``mallopt`` parameter numbers from glibc's ``<malloc.h>``.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # allocations above this are mapped on their own (glibc's cap for the dynamic threshold)
TRIM_THRESHOLD = 256 * 2**20  # free memory kept at the top of the heap before returning it to the kernel


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module doc); False where the C library has no ``mallopt``."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # no C library found (TypeError: name None on Windows), or not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
