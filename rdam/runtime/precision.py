"""The numeric precision a model runs under: decided here, once, for every path."""

from __future__ import annotations

import contextlib
import logging
import platform
from typing import Any

import torch

from rdam.errors import ConfigError

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


#: The CPU flags of native bfloat16 matrix instructions, and their names in a run's record.
_BF16_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16"}


def _cpuinfo() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            return fh.read()
    except OSError:
        return None


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    info = _cpuinfo() or ""
    return any(flag in info for flag in _BF16_FLAGS)


def device_name(device: torch.device) -> str:
    """What ``device`` is, for a run's record of its compute: the GPU's name, or the CPU's
    model name with its native bfloat16 instructions named (``AMD EPYC (AVX512-BF16)``,
    ``AMD EPYC (no native bf16)``)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    info = _cpuinfo()
    if info is None:
        return f"{platform.processor() or platform.machine() or 'CPU'} (CPU flags unknown)"
    names = [
        line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")
    ]
    name = names[0] if names else platform.processor() or platform.machine() or "CPU"
    native = [label for flag, label in _BF16_FLAGS.items() if flag in info]
    return f"{name} ({', '.join(native) if native else 'no native bf16'})"


def resolve_precision(precision: str, device: torch.device) -> str:
    """Resolve ``auto``: ``bf16`` autocast on CUDA devices and on CPUs with native bfloat16
    matrix instructions (AVX512-BF16 or AMX), ``fp32`` elsewhere.

    On such CPUs bf16 with channels_last ran the third shipped face model 1.8x faster than fp32
    and agreed with fp32 on the top class of 99.75 % of the 3,589 FER2013 validation faces
    (accuracy 65.20 % vs 65.14 %; docs/model-card.md, docs/benchmarks.md figure 2). The flag
    is not the speed everywhere: on an AVX512-BF16 CPU without AMX a bf16 GEMM ran at 0.55x
    float32 and the training step at the same speed as float32 (figure 9). Pass ``fp32`` for
    exact float32 logits.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        if precision == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
            log.warning("this CPU has no native bfloat16 (AVX512-BF16/AMX): bf16 may be slow")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and cpu_supports_bf16():
        return "bf16"
    return "fp32"


#: Lightning's name for each resolved precision of :func:`resolve_precision`.
_LIGHTNING_PRECISION = {"bf16": "bf16-mixed", "fp32": "32"}


def training_precision(precision: str, accelerator: str = "auto") -> str:
    """The Lightning ``precision`` for ``trainer.precision``: ``auto`` is decided by
    :func:`resolve_precision` (``bf16-mixed`` on CUDA devices with bfloat16 and on CPUs with
    native bfloat16 matrix instructions, ``32`` elsewhere); any other value is kept.

    Without AVX512-BF16/AMX, PyTorch emulates bfloat16 on the CPU: a training step of the
    default recipe then ran more than ten times slower than in float32 (docs/benchmarks.md,
    figure 15), so ``bf16-mixed`` asked for on such a CPU is kept but warned about.
    """
    on_cuda = accelerator in ("cuda", "gpu") or (
        accelerator == "auto" and torch.cuda.is_available()
    )
    if precision == "auto":
        device = torch.device("cuda" if on_cuda else "cpu")
        return _LIGHTNING_PRECISION[resolve_precision("auto", device)]
    if precision.startswith("bf16") and not on_cuda and not cpu_supports_bf16():
        log.warning(
            "trainer.precision=%s on a CPU without native bfloat16 (AVX512-BF16/AMX): PyTorch "
            "emulates it, several times slower than float32; trainer.precision=auto picks 32 "
            "here",
            precision,
        )
    return precision


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a resolved precision (``fp32``: none)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
