"""The machine line of tables, records and benchmarks (bbbprune.machine): two CPUs of one model
name can differ twice in speed and round differently, so the clock and the widest vector unit
go beside the name."""

from __future__ import annotations

import os

import torch

from bbbprune.machine import cpu_description, machine_description

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
cpu MHz\t\t: 2445.404
flags\t\t: fpu sse sse2 avx fma avx2 bmi2

processor\t: 1
model name\t: Another CPU
flags\t\t: avx512f avx2
"""


def test_the_machine_line_names_clock_and_vector_width_of_the_first_processor():
    assert cpu_description(CPUINFO) == "AMD EPYC (2445 MHz, AVX2, no AVX-512)"
    with_512 = CPUINFO.replace("avx2 bmi2", "avx2 avx512f bmi2")
    assert cpu_description(with_512) == "AMD EPYC (2445 MHz, AVX2, AVX-512)"
    assert cpu_description("model name\t: Some CPU\n") == "Some CPU"  # no clock, no flags
    assert cpu_description("processor\t: 0\n") is None


def test_a_cpu_machine_is_its_cpu_and_its_core_count():
    described = machine_description(torch.device("cpu"))
    assert described.endswith(f", {os.cpu_count()} cores")
    assert described == machine_description()  # no device: the CPU
