"""Device and precision: chosen by what the machine computes natively, caps respected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest
import torch

from d2l_resnet import devices
from d2l_resnet.devices import (
    AVX2_CAPS,
    Precision,
    cpu_bf16_support,
    get_device,
    resolve_precision,
)

PROBE = ("import json; from d2l_resnet.devices import cpu_bf16_support, resolve_precision; "
         "p = resolve_precision('auto', 'cpu'); "
         "print(json.dumps([p.name, p.reason, cpu_bf16_support()[0]]))")


def _probe(env: dict[str, str]) -> tuple[str, str, bool]:
    """``resolve_precision('auto', 'cpu')`` in a fresh process with ``env`` set (the caps
    are read when the libraries load)."""
    clean = {k: v for k, v in os.environ.items() if k not in AVX2_CAPS}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env},
                         capture_output=True, text=True, check=True).stdout
    name, reason, native = json.loads(out.strip().splitlines()[-1])
    return name, reason, native


def test_auto_picks_fp32_when_the_cpu_is_capped_at_avx2() -> None:
    name, reason, native = _probe(AVX2_CAPS)
    assert (name, native) == ("fp32", False)
    assert "AVX2" in reason or "no native bfloat16" in reason


def test_auto_picks_bf16_natively_exactly_when_the_detection_says_so() -> None:
    name, reason, native = _probe({})
    assert name == ("bf16" if native else "fp32")
    assert reason == cpu_bf16_support()[1]      # the same answer in this process
    has_units = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert native == (has_units and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()))


def test_a_cap_below_native_bfloat16_is_respected(monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")     # AVX-512 without bf16
    native, reason = cpu_bf16_support()
    assert not native
    assert "ONEDNN_MAX_CPU_ISA=AVX512_CORE" in reason or "no native bfloat16" in reason


def test_detection_follows_the_hardware_flags(monkeypatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert cpu_bf16_support() == (False,
                                  "this CPU has no native bfloat16 (no AMX or AVX512-BF16)")
    assert resolve_precision("auto", "cpu") == Precision(
        "fp32", "this CPU has no native bfloat16 (no AMX or AVX512-BF16)")


def test_explicit_precisions_are_honoured_and_slow_bf16_warns_once(monkeypatch) -> None:
    monkeypatch.setattr(devices, "cpu_bf16_support", lambda: (False, "test: no bf16"))
    monkeypatch.setattr(devices, "_warned_slow_bf16", set())
    assert resolve_precision("fp32", "cpu").name == "fp32"
    with pytest.warns(UserWarning, match=r"bf16.*test: no bf16.*'auto' or 'fp32'"):
        assert resolve_precision("bf16", "cpu") == Precision("bf16", "as asked")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_precision("bf16", "cpu")        # once is enough
    with pytest.raises(ValueError, match=r"'fp16'.*'auto', 'fp32', 'bf16'"):
        resolve_precision("fp16", "cpu")


def test_str_of_a_precision_is_the_report_line() -> None:
    assert str(Precision("bf16", "CPU has AMX")) == "precision bf16 (CPU has AMX)"


def test_auto_device_is_cuda_then_mps_then_cpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert get_device("auto") == torch.device("mps")
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert get_device(None) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("AUTO") == torch.device("cuda")


def test_get_device_names_and_errors(monkeypatch) -> None:
    assert get_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"'gpu0'.*'auto', 'cpu'"):
        get_device("gpu0")
    with pytest.raises(ValueError, match=f"cuda:{torch.cuda.device_count()}"):
        get_device(f"cuda:{torch.cuda.device_count()}")
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match=r"'mps'.*Apple"):
        get_device("mps")
