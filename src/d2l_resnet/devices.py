"""Where to compute and in which precision, chosen by what the machine computes natively.

- :func:`get_device` turns ``"auto"`` into CUDA if there is a GPU, else Apple's ``mps``,
  else the CPU, and checks an explicit name against what this machine has.
- :func:`resolve_precision` turns ``"auto"`` into ``"bf16"`` (bfloat16 autocast) only where
  the device computes bfloat16 natively and fast: a CPU with Intel AMX or AVX512-BF16 as
  oneDNN (PyTorch's CPU kernel library) sees it, or a CUDA GPU with bfloat16 support.
  Everywhere else it is ``"fp32"``: on a CPU without those instructions (most laptops:
  AVX2 only) oneDNN emulates bfloat16, and a training step runs many times slower than
  in float32.

What oneDNN sees respects the caps that let anyone measure a laptop-class CPU on a
bigger one: ``ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
ATEN_CPU_CAPABILITY=avx2`` (see :data:`AVX2_CAPS`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from d2l_resnet.checks import check_choice

__all__ = [
    "AVX2_CAPS",
    "PRECISIONS",
    "Precision",
    "autocast",
    "cpu_bf16_support",
    "get_device",
    "resolve_precision",
    "try_gpu",
]

PRECISIONS = ("auto", "fp32", "bf16")

#: The environment that caps oneDNN, MKL and ATen at AVX2: a laptop-class CPU.
AVX2_CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "ATEN_CPU_CAPABILITY": "avx2"}

# oneDNN's instruction-set levels in increasing order (its ONEDNN_MAX_CPU_ISA values):
# native bfloat16 arithmetic starts at AVX512_CORE_BF16.
_ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16",
                "AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16",
                "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "DEFAULT", "ALL")
_FIRST_BF16_ISA = _ONEDNN_ISAS.index("AVX512_CORE_BF16")


def try_gpu(i: int = 0) -> torch.device:
    """``cuda:i`` if that GPU exists, else the CPU (the source's ``try_gpu``)."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The device called ``name``: ``"auto"`` or None (CUDA, else ``mps``, else the CPU),
    ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Raises:
        ValueError: If the name is not a device, or names one this machine lacks.
    """
    if name is None or (isinstance(name, str) and name.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    expected = "expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
    try:
        device = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {name!r}; {expected}") from err
    if device.type == "cuda":
        if torch.cuda.device_count() <= (device.index or 0):
            raise ValueError(f"device {name!r} is not available: this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s); use 'cpu' or 'auto'")
    elif device.type == "mps":
        if not _mps_available():
            raise ValueError(f"device {name!r} is not available: mps needs an Apple-silicon "
                             f"Mac with a PyTorch built for it; use 'cpu' or 'auto'")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; {expected}")
    return device


def _onednn_isa_cap() -> str | None:
    """The instruction-set cap set for oneDNN in the environment, upper-cased, or None."""
    for var in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(var, "").strip().upper()
        if value:
            return value
    return None


def cpu_bf16_support() -> tuple[bool, str]:
    """Whether this CPU computes bfloat16 natively, as oneDNN sees it, and why.

    Three things must hold: the processor has AMX or AVX512-BF16 instructions (read by
    PyTorch's cpuinfo); oneDNN reports bfloat16 support (``False`` when
    ``ONEDNN_MAX_CPU_ISA`` caps it below AVX-512); and any such cap still admits
    ``AVX512_CORE_BF16``, below which oneDNN only emulates bfloat16.

    Returns:
        ``(native, reason)``, the reason in words for a report line.
    """
    cpu = torch.cpu
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    avx512_bf16 = bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    if not (amx or avx512_bf16):
        return False, "this CPU has no native bfloat16 (no AMX or AVX512-BF16)"
    cap = _onednn_isa_cap()
    try:
        onednn_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn_bf16 = False
    if cap is not None and cap in _ONEDNN_ISAS and _ONEDNN_ISAS.index(cap) < _FIRST_BF16_ISA:
        onednn_bf16 = False
    if not onednn_bf16:
        if cap:
            return False, f"ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below native bfloat16"
        return False, "oneDNN reports no bfloat16 support"
    return True, "CPU has AMX" if amx else "CPU has AVX512-BF16"


@dataclass(frozen=True)
class Precision:
    """A resolved precision: ``"fp32"`` or ``"bf16"``, with the reason it was chosen."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"precision {self.name} ({self.reason})"


_warned_slow_bf16: set[str] = set()


def resolve_precision(precision: str, device: torch.device | str) -> Precision:
    """Turn ``"auto"``, ``"fp32"`` or ``"bf16"`` into what runs on ``device``, with a reason.

    ``"auto"`` picks bf16 autocast where the device computes bfloat16 natively (see the
    module's docstring), else fp32. An explicit ``"bf16"`` is honoured everywhere, but
    on a CPU without native bfloat16 it warns once that it will be slow.

    Raises:
        ValueError: If ``precision`` is not one of :data:`PRECISIONS`.
    """
    check_choice("precision", precision, PRECISIONS)
    device = torch.device(device)
    if device.type == "cpu":
        native, why = cpu_bf16_support()
    elif device.type == "cuda":
        native = torch.cuda.is_bf16_supported()
        why = "GPU supports bfloat16" if native else "this GPU has no native bfloat16"
    else:
        native, why = False, f"autocast is not used on {device.type}"
    if precision == "fp32":
        return Precision("fp32", "as asked")
    if precision == "bf16":
        if device.type == "cpu" and not native and why not in _warned_slow_bf16:
            _warned_slow_bf16.add(why)
            warnings.warn(f"precision bf16 on a CPU without native bfloat16 ({why}): oneDNN "
                          f"emulates it, and a training step runs many times slower than in "
                          f"fp32 (`python -m d2l_resnet bench train --isa avx2 --precision "
                          f"bf16` measures it); use precision 'auto' or 'fp32'", stacklevel=2)
        return Precision("bf16", "as asked")
    return Precision("bf16", why) if native else Precision("fp32", why)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bfloat16 autocast on ``device`` for ``precision="bf16"``; nothing for ``"fp32"``."""
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                        enabled=precision == "bf16"):
        yield
