"""The machine that trained a run or evaluated a record, in words: numbers regenerate bit for bit
on one machine, not across CPUs (MKL picks other kernels, rounding differs, training amplifies
it), and CPUs of one model name can differ twice in speed, so tables and benchmarks name it."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch


def cpu_description(cpuinfo: str) -> str | None:
    """The first processor of a /proc/cpuinfo text: model name, clock and widest vector unit,
    e.g. "AMD EPYC (2445 MHz, AVX2, no AVX-512)". Two CPUs of one model name can differ 2x in
    speed, so the clock and the vector width go beside the name. None without a model name."""
    fields = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if "model name" not in fields:
        return None
    flags = set(fields.get("flags", "").split())
    details = [f"{float(fields['cpu MHz']):.0f} MHz"] if "cpu MHz" in fields else []
    if flags:
        widest = "AVX2" if "avx2" in flags else "AVX" if "avx" in flags else "no AVX"
        details += [widest, "AVX-512" if "avx512f" in flags else "no AVX-512"]
    return fields["model name"] + (f" ({', '.join(details)})" if details else "")


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """This machine's CPU (``cpu_description`` of /proc/cpuinfo, else what Python reports)."""
    try:
        described = cpu_description(Path("/proc/cpuinfo").read_text())
    except OSError:
        described = None
    return described or platform.processor() or "unknown CPU"


def machine_description(device: torch.device | str | None = None) -> str:
    """What computed on ``device``: the CUDA device's name, or the CPU and its core count, e.g.
    "Intel(R) Xeon(R) Processor (2600 MHz, AVX2, AVX-512), 2 cores"."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {os.cpu_count()} cores"
