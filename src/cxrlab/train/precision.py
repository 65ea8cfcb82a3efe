"""Training precision (``train.amp``): float32, or bf16/fp16 autocast, resolved once per run and recorded.

bf16 on the CPU is only worth it where the processor computes in bfloat16 natively (x86 AVX512-BF16 or AMX,
Arm BF16); elsewhere oneDNN emulates it, slower than float32, so asking for it there is an error rather than a
silent slowdown. ``auto`` picks bf16 on a GPU and on a CPU with native bf16 (measured faster with no loss of
validation AUROC beyond seed noise: benchmarks/bench_bf16.py), float32 otherwise. The validation pass on the CPU
always runs in float32 (``cxrlab.train.loop.evaluate``), so a run's saved predictions equal what ``predict`` and
the exported model compute from its weights.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from cxrlab.errors import CxrlabError

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # /proc/cpuinfo: x86 flags, Arm "Features: ... bf16"
CPU_AUTO_BF16 = True  # auto -> bf16 on a CPU with native bf16 (decided from benchmarks/results/bf16.json)


@dataclass(frozen=True)
class Precision:
    """The resolved precision of a run: what was asked, what is used, and the CPU's bf16 support."""

    requested: str
    used: str  # fp32, bf16 or fp16
    cpu_bf16: str | None  # the processor flag that gives native bf16, None when absent or unknown

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None: float32, no autocast)."""
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.used]

    def record(self) -> dict[str, str | None]:
        """For the run manifest."""
        return {"requested": self.requested, "used": self.used, "cpu_bf16": self.cpu_bf16}


def cpu_bf16_flag(cpuinfo: str | Path = "/proc/cpuinfo") -> str | None:
    """The first native-bf16 flag of this processor (``avx512_bf16``, ``amx_bf16``, Arm ``bf16``), else None."""
    try:
        words = set(Path(cpuinfo).read_text().split())
    except OSError:  # not Linux, or no /proc: cannot tell, so no native bf16 is assumed
        return None
    return next((f for f in CPU_BF16_FLAGS if f in words), None)


def resolve_precision(mode: str, device: torch.device) -> Precision:
    """``train.amp`` (auto, off, bf16, fp16) on ``device`` -> the precision used; unsupported asks are errors."""
    flag = cpu_bf16_flag() if device.type == "cpu" else None
    if mode == "auto":
        native = device.type == "cuda" or (CPU_AUTO_BF16 and flag is not None)
        return Precision(mode, "bf16" if native else "fp32", flag)
    if mode == "off":
        return Precision(mode, "fp32", flag)
    if mode == "fp16" and device.type != "cuda":
        raise CxrlabError("train.amp=fp16 needs a GPU; use --set train.amp=bf16 (or off) on CPU")
    if mode == "bf16" and device.type == "cpu" and flag is None:
        raise CxrlabError(f"train.amp=bf16 on the CPU needs native bfloat16 (AVX512-BF16 or AMX on x86, BF16 on Arm); "
                          f"this {platform.machine() or 'CPU'} processor reports none, so bf16 would be emulated and "
                          "slower than float32; use --set train.amp=off")
    return Precision(mode, mode, flag)
