"""The C allocator of a bbbprune process: freed memory is kept for the next batch.

glibc's malloc serves every block above a threshold (at most 32 MiB) with its own mmap and
unmaps it when it is freed, and it gives the top of its heap back to the system once more than
a small amount is free there. An evaluation pass of LeNet-5 over a batch of 1,000 images
allocates activations of 46 MB (the first convolution's output) and more; each batch then
maps, faults in (the kernel zeroes every 4 KiB page) and unmaps them again. Evaluating the 16
pruning records of an SGD LeNet-5 run on one thread took 10 million page faults, 18.6 s of
system time and 77 s in all. With glibc's mmap switched off (M_MMAP_MAX = 0) and its trim
threshold at 256 MiB, freed blocks stay in the heap and the next batch reuses them: 0.19
million faults, 0.7 s of system time, 57 s in all, and records equal to the last bit (where a
block comes from does not change what is computed).

The cost: memory freed below the top of the heap is not returned to the system until the
process ends, so a process's resident size stays near its peak. ``keep_freed_memory`` is called
by each command job (``bbbprune.cli``), not on import: a program that uses the layers as a
library keeps its own allocator settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from functools import lru_cache

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_MAX = -4
TRIM_THRESHOLD = 256 << 20


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Switch off glibc's mmap for allocations and raise its trim threshold (module docstring),
    once per process. Returns whether both took effect; False where the C library is not glibc
    (nothing is changed there)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
