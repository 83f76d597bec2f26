"""The machine that trained a run or evaluated a record, in words: numbers regenerate bit for bit
on one machine, not across CPUs (MKL picks other kernels, rounding differs, training amplifies
it), and CPUs of one model name can differ twice in speed, so tables and benchmarks name it."""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch


def cpu_description(cpuinfo: str, max_khz: int | None = None) -> str | None:
    """The first processor of a /proc/cpuinfo text: model name, clock and widest vector unit,
    e.g. "AMD EPYC (2445 MHz, AVX2, no AVX-512)". Two CPUs of one model name can differ 2x in
    speed, so the clock and the vector width go beside the name. The clock is ``max_khz`` (the
    cpufreq maximum) where given: cpuinfo's "cpu MHz" is the current clock, which moves between
    processes where a governor scales it. None without a model name."""
    fields = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    if "model name" not in fields:
        return None
    flags = set(fields.get("flags", "").split())
    mhz = max_khz / 1000 if max_khz else float(fields.get("cpu MHz", 0))
    details = [f"{mhz:.0f} MHz"] if mhz else []
    if flags:
        widest = "AVX2" if "avx2" in flags else "AVX" if "avx" in flags else "no AVX"
        details += [widest, "AVX-512" if "avx512f" in flags else "no AVX-512"]
    return fields["model name"] + (f" ({', '.join(details)})" if details else "")


def _max_khz(path: Path = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")):
    """The first CPU's cpufreq maximum in kHz, or None where the kernel has no cpufreq driver
    (virtual machines often have none; cpuinfo's clock is then fixed)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=1)
def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's CPU (``cpu_description`` of /proc/cpuinfo, else what Python reports, e.g.
    on macOS)."""
    try:
        described = cpu_description(cpuinfo.read_text(), _max_khz())
    except OSError:
        described = None
    return described or platform.processor() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, which containers and job schedulers
    narrow), else every core the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        return os.cpu_count() or 1


def machine_description(device: torch.device | str | None = None) -> str:
    """What computed on ``device``: the CUDA device's name, or the CPU and its core count, e.g.
    "Intel(R) Xeon(R) Processor (2600 MHz, AVX2, AVX-512), 2 cores"."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {usable_cores()} cores"
