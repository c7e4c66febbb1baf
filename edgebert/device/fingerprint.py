"""What a device is, as far as ONNX Runtime latency is concerned.

A latency table is only valid on the device and settings that made it, so it
carries a fingerprint: CPU model, core counts, the ISA extensions ORT's kernels
(MLAS) dispatch on, OS, library versions, and the harness settings (threads,
precision, spinning policy). `match_key` drops what drifts from minute to
minute (clock frequency), so two tables made on one machine with the same
settings have equal keys.
"""

from __future__ import annotations

import os
import platform

import numpy as np
import onnxruntime as ort
import psutil

from edgebert.device.spinning import DEFAULT as DEFAULT_SPINNING

FINGERPRINT_VERSION = 1

# ISA extensions that change which MLAS kernels ORT picks (x86: AVX2/AVX-512
# GEMM, VNNI and AMX for INT8/BF16; Arm: dot-product and i8mm for INT8, SVE).
X86_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_int8", "amx_bf16",
)
ARM_FLAGS = ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2", "sme")
# Best first: what `describe` names as the device's vector ISA.
_HEADLINE = ("amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx_vnni", "avx2", "avx",
             "sse4_2", "sve2", "sve", "i8mm", "asimddp", "asimd")

# Fields that may differ between two runs on one machine with one setting.
DRIFTING = ("cpu_freq_mhz", "cpu_freq_max_mhz")
# Recorded, but not what makes two devices time alike: a table made on this CPU with this
# ORT build holds on a machine of the same kind with another kernel or Python patch release.
INCIDENTAL = ("kernel", "python", "numpy")


def _cpuinfo() -> dict[str, str]:
    """First value of each /proc/cpuinfo field ({} where there is no /proc)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def _cpu_model(info: dict[str, str]) -> str:
    # x86 says "model name"; Arm boards say "Hardware" or "Model", sometimes neither.
    for key in ("model name", "Hardware", "Model", "Processor"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine() or "unknown"


def _isa(info: dict[str, str], machine: str) -> dict[str, bool]:
    present = set((info.get("flags") or info.get("Features") or "").split())
    names = ARM_FLAGS if machine.lower() in ("aarch64", "arm64") or machine.startswith("arm") else X86_FLAGS
    return {flag: flag in present for flag in names}


def _frequency() -> tuple[float | None, float | None]:
    """(current, max) clock in MHz; max is None where the hypervisor hides it."""
    try:
        freq = psutil.cpu_freq()
    except (OSError, NotImplementedError, RuntimeError):
        freq = None
    if freq is None:
        return None, None
    return round(freq.current, 1), (round(freq.max, 1) if freq.max else None)


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), else the logical count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity masks
        return os.cpu_count() or 1


def fingerprint(threads: int, precision: str = "fp32", spinning: str = DEFAULT_SPINNING) -> dict:
    """This machine and these harness settings, as plain JSON-able data."""
    info = _cpuinfo()
    machine = platform.machine()
    current, maximum = _frequency()
    return {
        "fingerprint_version": FINGERPRINT_VERSION,
        "cpu_model": _cpu_model(info),
        "physical_cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "logical_cores": psutil.cpu_count(logical=True) or os.cpu_count(),
        "usable_cores": usable_cores(),
        "isa": _isa(info, machine),
        "os": platform.system(),
        "kernel": platform.release(),
        "machine": machine,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "threads": int(threads),
        "precision": precision,
        "spinning": spinning,
        "cpu_freq_mhz": current,
        "cpu_freq_max_mhz": maximum,
    }


def match_key(fp: dict) -> dict:
    """The fingerprint without what drifts or is incidental: equal keys mean 'same device, same settings'."""
    return {k: v for k, v in fp.items() if k not in DRIFTING and k not in INCIDENTAL}


def machine_key(fp: dict) -> str:
    """The machine alone (no threads, precision, spinning or clock): what groups one machine's results."""
    isa = ",".join(sorted(k for k, v in fp.get("isa", {}).items() if v))
    return f"{fp.get('cpu_model')}|{fp.get('physical_cores')}|{isa}|{fp.get('onnxruntime')}"


def machine_tag(fp: dict) -> str:
    """Eight hex digits naming the machine in file names (results of two CPUs side by side)."""
    import hashlib

    return hashlib.sha256(machine_key(fp).encode()).hexdigest()[:8]


def machine_name(fp: dict) -> str:
    """The machine part of `describe`, e.g. 'Intel Xeon @ 2.50GHz, 2C/2T, avx512_vnni, Linux x86_64'."""
    isa = fp.get("isa", {})
    headline = next((f for f in _HEADLINE if isa.get(f)), "no SIMD flags")
    return (f"{fp.get('cpu_model')}, {fp.get('physical_cores')}C/{fp.get('logical_cores')}T, {headline}, "
            f"{fp.get('os')} {fp.get('machine')}")


def describe(fp: dict) -> str:
    """One line, e.g. 'Intel Xeon @ 2.50GHz, 2C/2T, avx512_vnni, Linux x86_64, ORT 1.31.1, 2 thr fp32 spin=stop'."""
    freq = f", {fp['cpu_freq_mhz']:.0f} MHz" if fp.get("cpu_freq_mhz") else ""
    return (f"{machine_name(fp)}, ORT {fp.get('onnxruntime')}, "
            f"{fp.get('threads')} thr {fp.get('precision')} spin={fp.get('spinning')}{freq}")
