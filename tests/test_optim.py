"""FlatSGD: torch.optim.SGD's results, without the fused step's copies."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from d2l_resnet.optim import FlatSGD, without_bias_decay

OPTIONS = {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4}


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 4))
    return net.to(memory_format=torch.channels_last)


def _steps(net: nn.Module, optimizer: torch.optim.Optimizer, n: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        X = torch.randn(6, 3, 5, 5, generator=gen).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 4, (6,), generator=gen)
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(X), y).backward()
        optimizer.step()


def _params(net: nn.Module, grouped: bool) -> Any:
    """The parameters, or two groups of them: the vectors without weight decay."""
    return without_bias_decay(net.parameters()) if grouped else net.parameters()


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_it_takes_exactly_the_steps_of_sgd_and_saves_the_same_state(
        fused: bool, grouped: bool) -> None:
    nets = [_net(), _net()]
    plain = torch.optim.SGD(_params(nets[0], grouped), fused=fused, **OPTIONS)
    flat = FlatSGD(_params(nets[1], grouped), fused=fused, **OPTIONS)
    _steps(nets[0], plain, 3)
    _steps(nets[1], flat, 3)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)
    saved, flat_saved = plain.state_dict(), flat.state_dict()
    assert flat_saved["param_groups"] == saved["param_groups"]
    for i, entry in saved["state"].items():
        buf = flat_saved["state"][i]["momentum_buffer"]
        assert buf.shape == entry["momentum_buffer"].shape
        assert torch.equal(buf, entry["momentum_buffer"])


def test_it_resumes_from_a_saved_sgd_state_and_sgd_from_its() -> None:
    nets = [_net(), _net()]
    plain = torch.optim.SGD(nets[0].parameters(), fused=True, **OPTIONS)
    _steps(nets[0], plain, 2)
    nets[1].load_state_dict(nets[0].state_dict())
    flat = FlatSGD(nets[1].parameters(), fused=True, **OPTIONS)
    flat.load_state_dict(copy.deepcopy(plain.state_dict()))
    again = _net()
    again.load_state_dict(nets[0].state_dict())
    plain_again = torch.optim.SGD(again.parameters(), fused=True, **OPTIONS)
    plain_again.load_state_dict(copy.deepcopy(flat.state_dict()))
    for net, optimizer in ((nets[0], plain), (nets[1], flat), (again, plain_again)):
        _steps(net, optimizer, 2, seed=1)
    for a, b, c in zip(*(n.parameters() for n in (nets[0], nets[1], again)), strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_a_gradient_in_another_layout_is_stepped_element_by_element() -> None:
    """Against SGD's plain loop (PyTorch 2.14's fused CPU step pairs a channels-last
    parameter's memory with a contiguous gradient's, element by element in memory)."""
    nets = [_net(), _net()]
    plain = torch.optim.SGD(nets[0].parameters(), foreach=False, **OPTIONS)
    flat = FlatSGD(nets[1].parameters(), fused=True, **OPTIONS)
    for net, optimizer in ((nets[0], plain), (nets[1], flat)):
        for p in net.parameters():
            p.grad = torch.arange(p.numel(), dtype=p.dtype).view(p.shape)   # contiguous
        optimizer.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_fused_step_copies_no_gradient() -> None:
    net = _net()
    optimizer = FlatSGD(net.parameters(), fused=True, **OPTIONS)
    _steps(net, optimizer, 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _steps(net, optimizer, 1)
    names = [e.name for e in prof.events()]
    assert "aten::_fused_sgd_" in names
    fused = [e for e in prof.events() if e.name == "aten::_fused_sgd_"]
    copies = [e for e in prof.events() if e.name == "aten::copy_"
              and any(e.time_range.start >= f.time_range.start
                      and e.time_range.end <= f.time_range.end for f in fused)]
    assert copies == []


def test_bad_use_is_refused_with_what_to_do() -> None:
    net = _net()
    optimizer = FlatSGD(net.parameters(), fused=True, **OPTIONS)
    net.to(memory_format=torch.contiguous_format)      # moves the 4-d parameters
    with pytest.raises(RuntimeError, match="after placing the network"):
        _steps(net, optimizer, 1)
    gappy = nn.Parameter(torch.zeros(4, 6)[:, ::2])
    with pytest.raises(ValueError, match=r"strides \(6, 2\).*torch.optim.SGD"):
        FlatSGD([gappy], lr=0.1)
