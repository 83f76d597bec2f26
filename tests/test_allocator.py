"""A bbbprune job keeps freed memory for its next batch (bbbprune.allocator): a block of the
size of LeNet-5's evaluation activations, allocated, written and freed again and again, is
faulted in from the system a few times (when the heap grows) instead of every time.
Counted in page faults, not timed."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="the allocator settings are glibc's",
)

# 48 MB blocks, above glibc's largest mmap threshold (32 MiB): by default each one is mapped,
# faulted in page by page and unmapped again
SCRIPT = """
import resource, sys, torch
from bbbprune.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() is True
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    block = torch.empty(12_000_000)  # 48 MB
    block.fill_(1.0)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    pages_per_block = 48_000_000 // 4096
    default = page_faults("default")
    kept = page_faults("keep")
    assert default > 25 * pages_per_block  # the default: nearly every block faults in again
    # kept: the heap grows now and then (small allocations settle above a freed block), and
    # otherwise the block's pages are reused: 5 to 10 blocks' worth of faults in 30 measured
    assert kept < default / 2


def test_the_setting_is_made_once_per_process():
    from bbbprune.allocator import keep_freed_memory

    keep_freed_memory.cache_clear()
    first = keep_freed_memory()
    assert keep_freed_memory() is first
    assert keep_freed_memory.cache_info().hits == 1
