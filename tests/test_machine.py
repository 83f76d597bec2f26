"""The machine line of tables, records and benchmarks (bbbprune.machine): two CPUs of one model
name can differ twice in speed and round differently, so the clock and the widest vector unit
go beside the name."""

from __future__ import annotations

import torch

from bbbprune import machine
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


def test_the_clock_is_the_cpufreq_maximum_where_the_kernel_reports_one():
    # cpuinfo's "cpu MHz" is the current clock: under a frequency governor it differs from one
    # process to the next, so one machine would read as several
    assert cpu_description(CPUINFO, max_khz=3_700_000) == "AMD EPYC (3700 MHz, AVX2, no AVX-512)"


def test_the_cpufreq_maximum_is_read_in_khz_and_absent_without_a_driver(tmp_path):
    path = tmp_path / "cpuinfo_max_freq"
    assert machine._max_khz(path) is None  # no cpufreq driver, as in most virtual machines
    path.write_text("3700000\n")
    assert machine._max_khz(path) == 3_700_000


def test_without_proc_cpuinfo_the_cpu_is_what_python_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(machine.platform, "processor", lambda: "arm")
    assert machine.cpu_model.__wrapped__(tmp_path / "no_cpuinfo") == "arm"  # e.g. macOS
    monkeypatch.setattr(machine.platform, "processor", lambda: "")
    assert machine.cpu_model.__wrapped__(tmp_path / "no_cpuinfo") == "unknown CPU"


def test_the_cores_are_those_the_process_may_run_on(monkeypatch):
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda pid: {0, 3}, raising=False)
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 64)
    assert machine.usable_cores() == 2  # a container or scheduler narrowed 64 cores to 2
    monkeypatch.delattr(machine.os, "sched_getaffinity")
    assert machine.usable_cores() == 64  # no affinity masks: every core


def test_a_cpu_machine_is_its_cpu_and_its_core_count(monkeypatch):
    monkeypatch.setattr(machine, "cpu_model", lambda: "Some CPU (1000 MHz, AVX2, no AVX-512)")
    monkeypatch.setattr(machine, "usable_cores", lambda: 3)
    expected = "Some CPU (1000 MHz, AVX2, no AVX-512), 3 cores"
    assert machine_description(torch.device("cpu")) == expected
    assert machine_description() == expected  # no device: the CPU
