"""The precision every path runs under (rdam.runtime.precision): ``trainer.precision=auto`` per
machine, and the device a run's record names."""

from __future__ import annotations

import pytest
import torch

from rdam.runtime import device_name, training_precision
from rdam.runtime import precision as precision_module

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_fp16
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_fp16
"""


@pytest.mark.parametrize(
    ("native", "asked", "expected"),
    [
        (True, "auto", "bf16-mixed"),
        (False, "auto", "32"),
        (False, "32", "32"),
        (True, "32", "32"),
        (False, "bf16-mixed", "bf16-mixed"),  # kept, with a warning (below)
    ],
)
def test_training_precision_on_the_cpu(monkeypatch, native, asked, expected) -> None:
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: native)
    assert training_precision(asked, "cpu") == expected


def test_bf16_asked_on_a_cpu_without_it_is_warned_about(monkeypatch, caplog) -> None:
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="rdam.runtime.precision"):
        training_precision("bf16-mixed", "cpu")
    assert "emulates it" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision_module, "cpu_supports_bf16", lambda: True)
    with caplog.at_level("WARNING", logger="rdam.runtime.precision"):
        training_precision("bf16-mixed", "cpu")
    assert caplog.text == ""


def test_training_precision_on_cuda(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert training_precision("auto", "auto") == "32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert training_precision("auto", "gpu") == "bf16-mixed"


@pytest.mark.parametrize(
    ("cpuinfo", "expected", "native"),
    [
        (XEON, "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (AVX512-BF16)", True),
        (
            XEON.replace("avx512_fp16", "avx512_fp16 amx_bf16 amx_tile"),
            "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz (AMX, AVX512-BF16)",
            True,
        ),
        ("model name\t: AMD EPYC\nflags\t: fpu avx2 fma\n", "AMD EPYC (no native bf16)", False),
    ],
)
def test_device_name_names_the_cpu_and_its_native_bf16(
    monkeypatch, cpuinfo, expected, native
) -> None:
    monkeypatch.setattr(precision_module, "_cpuinfo", lambda: cpuinfo)
    assert device_name(torch.device("cpu")) == expected
    assert precision_module.cpu_supports_bf16() is native


def test_device_name_without_cpuinfo_says_the_flags_are_unknown(monkeypatch) -> None:
    monkeypatch.setattr(precision_module, "_cpuinfo", lambda: None)
    assert device_name(torch.device("cpu")).endswith("(CPU flags unknown)")
    assert not precision_module.cpu_supports_bf16()


def test_device_name_of_a_gpu_is_its_name(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert device_name(torch.device("cuda", 0)) == "NVIDIA H200"
