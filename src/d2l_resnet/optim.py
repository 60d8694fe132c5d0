"""SGD that steps on flat views of the parameters: the same arithmetic, without copies.

PyTorch's fused CPU step (``torch.optim.SGD(..., fused=True)``) makes a contiguous copy
of every gradient that is not contiguous in the default layout, and then steps on the
original anyway. In the channels-last layout every 3x3 kernel's gradient is such a
gradient, so each step copies most of ResNet-18's 11 million gradients for nothing, and
the optimizer's step takes about twice as long as it needs. The step is element by
element (``d = g + wd * p``, ``buf = m * buf + d``, ``p -= lr * (d + m * buf)`` with
Nesterov), so it can run on the parameters' memory read as one flat vector: a flat
view of a dense tensor is contiguous, and the view shares the parameter's memory.
:class:`FlatSGD` does that and keeps ``torch.optim.SGD``'s interface (rate schedules
work on it); its ``state_dict`` holds the momentum in the parameters' own shapes, as
``torch.optim.SGD`` saves it. Like ``torch.optim.SGD`` it takes groups of parameters
with their own options (e.g. no weight decay on some).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["FlatSGD", "without_bias_decay"]


def without_bias_decay(params: Iterable[nn.Parameter]) -> list[dict[str, Any]]:
    """Two groups of parameters for an optimizer: the weights of convolutions and linear
    layers, and the vectors (biases, BatchNorm's scales and shifts) with no weight decay
    (the "no bias decay" of He et al., *Bag of Tricks*, 2019, Sec. 3.1)."""
    params = list(params)
    return [{"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t``'s elements fill its memory exactly (no gaps, no overlaps)."""
    expected = 1
    for size, stride in sorted(zip(t.shape, t.stride(), strict=True), key=lambda d: d[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True


def _flat(t: torch.Tensor) -> torch.Tensor:
    """``t``'s memory as one contiguous vector (``t`` must be dense, without overlaps)."""
    return t.as_strided((t.numel(),), (1,))


class FlatSGD(torch.optim.SGD):
    """``torch.optim.SGD`` over flat views of ``params`` (same options, same results).

    Raises:
        ValueError: If a parameter is not dense (a view with gaps or overlaps).
    """

    def __init__(self, params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
                 **options: Any) -> None:
        groups = list(params)       # parameters, or groups of them (as torch.optim.SGD)
        if not groups or not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        groups = [{**group, "params": list(group["params"])} for group in groups]
        self.model_params = [p for group in groups for p in group["params"]]
        for p in self.model_params:
            if not _dense(p):
                raise ValueError(f"FlatSGD steps on dense parameters; one of shape "
                                 f"{tuple(p.shape)} has strides {p.stride()}: use "
                                 f"torch.optim.SGD for it")
        super().__init__([{**group, "params": [nn.Parameter(_flat(p.detach()))
                                               for p in group["params"]]}
                          for group in groups], **options)
        self.flat_params = [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.model_params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()
        super().zero_grad(set_to_none)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for p, flat in zip(self.model_params, self.flat_params, strict=True):
            if p.data_ptr() != flat.data_ptr():
                raise RuntimeError("a parameter was moved or replaced after FlatSGD was "
                                   "made (e.g. by .to()); make the optimizer after placing "
                                   "the network")
            g = p.grad
            if g is not None and g.stride() != p.stride():   # not in the parameter's layout
                g = torch.empty_like(p).copy_(g)
            flat.grad = None if g is None else _flat(g)
        return super().step(closure)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.SGD``'s, with each momentum buffer in its parameter's shape."""
        saved = super().state_dict()
        for i, p in enumerate(self.model_params):
            entry = saved["state"].get(i)
            if entry is not None and entry.get("momentum_buffer") is not None:
                buf = entry["momentum_buffer"].as_strided(p.shape, p.stride())
                saved["state"][i] = {**entry, "momentum_buffer": buf}
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for p, flat in zip(self.model_params, self.flat_params, strict=True):
            buf = self.state[flat].get("momentum_buffer")
            if buf is not None and buf.shape != flat.shape:
                # Element by element into the parameter's layout, then its memory order.
                self.state[flat]["momentum_buffer"] = _flat(torch.empty_like(p).copy_(buf))
