"""What a device is, as far as ONNX Runtime latency is concerned.

A latency table is only valid on the device and settings that made it, so it
carries a fingerprint: CPU model and identity (family, model, stepping; cache
sizes), core counts, the ISA extensions ORT's kernels (MLAS) dispatch on, OS,
library versions, and the harness settings (threads, precision, spinning
policy). `match_key` drops what drifts from minute to minute (clock frequency),
so two tables made on one machine with the same settings have equal keys;
`differences` says where two fingerprints part.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort
import psutil

from edgebert.device.spinning import DEFAULT as DEFAULT_SPINNING

# 2: the CPU's identity and caches. A hypervisor masks the CPU's name: two Xeons of other
# generations both read "Intel(R) Xeon(R) Processor" with the same ISA flags here (a 2.1 GHz part,
# and a 2.6 GHz family 6 model 167 part with 480 MiB of L3), and the first's table priced models
# on the second from -11 % (four reference layers at hidden 128) to +51 % (the smallest corner).
FINGERPRINT_VERSION = 2
IDENTITY = ("cpu_id", "caches_kib")  # added in version 2
# A version-1 fingerprint has no identity; the clock stands in for it. On the virtual machines those
# were made on it is the part's fixed rate (2100.0, 2500.0, 2596.1 MHz in every record of each).
CLOCK_TOLERANCE = 0.03

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
NOT_A_PROPERTY = ("fingerprint_version",)
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


def _cpu_id(info: dict[str, str]) -> str | None:
    """Vendor, family, model and stepping (x86) or implementer, part, variant and revision (Arm):
    what tells CPUs apart when the model name is masked. None where /proc/cpuinfo says neither."""
    if "cpu family" in info:
        return (f"{info.get('vendor_id', '?')} family {info['cpu family']} model {info.get('model', '?')} "
                f"stepping {info.get('stepping', '?')}")
    if "CPU part" in info:
        return (f"implementer {info.get('CPU implementer', '?')} part {info['CPU part']} "
                f"variant {info.get('CPU variant', '?')} revision {info.get('CPU revision', '?')}")
    return None


def _kib(size: str) -> int | None:
    units = {"K": 1, "M": 1024, "G": 1024 * 1024}
    size = size.strip().upper()
    try:
        return int(size[:-1]) * units[size[-1]] if size[-1:] in units else int(size) // 1024
    except ValueError:
        return None


def _caches_kib(root: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> dict[str, int]:
    """The first core's caches, e.g. {"L1d": 48, "L1i": 64, "L2": 2048, "L3": 491520} ({} off Linux)."""
    caches: dict[str, int] = {}
    for d in sorted(root.glob("index*")):
        try:
            level, kind, size = ((d / f).read_text().strip() for f in ("level", "type", "size"))
        except OSError:
            continue
        kib = _kib(size)
        if kib is not None:
            caches[f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")] = kib
    return caches


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
        "cpu_id": _cpu_id(info),
        "caches_kib": _caches_kib(),
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
    return {k: v for k, v in fp.items() if k not in DRIFTING and k not in INCIDENTAL and k not in NOT_A_PROPERTY}


def differences(there: dict, here: dict) -> list[str]:
    """The fields in which two fingerprints part ([]: same device, same settings). Where either
    predates the CPU's identity (version 1), its clock stands in for it, within CLOCK_TOLERANCE."""
    a, b = match_key(there), match_key(here)
    out = [k for k in sorted(set(a) | set(b)) if k not in IDENTITY and a.get(k) != b.get(k)]
    if all(k in there for k in IDENTITY) and all(k in here for k in IDENTITY):
        return out + [k for k in IDENTITY if there[k] != here[k]]
    fa, fb = there.get("cpu_freq_mhz"), here.get("cpu_freq_mhz")
    if fa and fb and abs(fa - fb) > CLOCK_TOLERANCE * max(fa, fb):
        out.append("cpu_freq_mhz")
    return out


def machine_identity(fp: dict) -> str:
    """'6/167/1, L3 480 MiB' (x86 family/model/stepping and the last cache); '' before version 2."""
    cpu_id = fp.get("cpu_id")
    if not cpu_id:
        return ""
    words = cpu_id.split()
    short = "/".join(words[i + 1] for i, w in enumerate(words[:-1]) if w in ("family", "model", "stepping", "part"))
    caches = fp.get("caches_kib") or {}
    last = max(caches, key=lambda c: c[1], default=None)
    size = f", {last} {caches[last] / 1024:g} MiB" if last else ""
    return (short or cpu_id) + size


def machine_key(fp: dict) -> str:
    """The machine alone (no threads, precision, spinning or clock): what groups one machine's results."""
    isa = ",".join(sorted(k for k, v in fp.get("isa", {}).items() if v))
    key = f"{fp.get('cpu_model')}|{fp.get('physical_cores')}|{isa}|{fp.get('onnxruntime')}"
    return key + (f"|{machine_identity(fp)}" if machine_identity(fp) else "")  # version-1 records keep their keys


def machine_tag(fp: dict) -> str:
    """Eight hex digits naming the machine in file names (results of two CPUs side by side)."""
    import hashlib

    return hashlib.sha256(machine_key(fp).encode()).hexdigest()[:8]


def machine_name(fp: dict) -> str:
    """The machine part of `describe`, e.g. 'Intel Xeon @ 2.50GHz, 2C/2T, avx512_vnni, Linux x86_64'."""
    isa = fp.get("isa", {})
    headline = next((f for f in _HEADLINE if isa.get(f)), "no SIMD flags")
    identity = f" [{machine_identity(fp)}]" if machine_identity(fp) else ""
    return (f"{fp.get('cpu_model')}{identity}, {fp.get('physical_cores')}C/{fp.get('logical_cores')}T, {headline}, "
            f"{fp.get('os')} {fp.get('machine')}")


def describe(fp: dict) -> str:
    """One line, e.g. 'Intel Xeon @ 2.50GHz, 2C/2T, avx512_vnni, Linux x86_64, ORT 1.31.1, 2 thr fp32 spin=stop'."""
    freq = f", {fp['cpu_freq_mhz']:.0f} MHz" if fp.get("cpu_freq_mhz") else ""
    return (f"{machine_name(fp)}, ORT {fp.get('onnxruntime')}, "
            f"{fp.get('threads')} thr {fp.get('precision')} spin={fp.get('spinning')}{freq}")
