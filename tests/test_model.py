"""The residual block, ResNet-18 and the summary, checked against independent references."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2l_resnet import Residual, count_parameters, format_summary, resnet18, resnet_block, summarize
from d2l_resnet.model import (
    MIN_SIZE,
    MatmulConv2d,
    PlainBlock,
    init_weights,
    small_image_net,
    use_matmul_convs,
)

# The output shapes the source notebook prints for a (1, 1, 224, 224) input.
SOURCE_224 = [
    ("Sequential", (1, 64, 56, 56)),
    ("Sequential", (1, 64, 56, 56)),
    ("Sequential", (1, 128, 28, 28)),
    ("Sequential", (1, 256, 14, 14)),
    ("Sequential", (1, 512, 7, 7)),
    ("AdaptiveAvgPool2d", (1, 512, 1, 1)),
    ("Flatten", (1, 512)),
    ("Linear", (1, 10)),
]
AT_28 = [
    ("Sequential", (1, 64, 7, 7)),
    ("Sequential", (1, 64, 7, 7)),
    ("Sequential", (1, 128, 4, 4)),
    ("Sequential", (1, 256, 2, 2)),
    ("Sequential", (1, 512, 1, 1)),
    ("AdaptiveAvgPool2d", (1, 512, 1, 1)),
    ("Flatten", (1, 512)),
    ("Linear", (1, 10)),
]


def _reference_block(cin: int, cout: int, use_1x1conv: bool, strides: int) -> dict[str, nn.Module]:
    return {
        "conv1": nn.Conv2d(cin, cout, 3, padding=1, stride=strides),
        "conv2": nn.Conv2d(cout, cout, 3, padding=1),
        "conv3": nn.Conv2d(cin, cout, 1, stride=strides) if use_1x1conv else None,
        "bn1": nn.BatchNorm2d(cout),
        "bn2": nn.BatchNorm2d(cout),
    }


def _reference_resnet18() -> nn.Module:
    """The source notebook's network, written out again here, independently of the package."""
    def stage(cin: int, cout: int, first: bool) -> list[nn.Module]:
        layers = []
        for i in range(2):
            downsample = i == 0 and not first
            parts = _reference_block(cin if i == 0 else cout, cout, downsample,
                                     2 if downsample else 1)
            layers.append(nn.ModuleDict({k: v for k, v in parts.items() if v is not None}))
        return layers

    return nn.Sequential(
        nn.Conv2d(1, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        *stage(64, 64, True), *stage(64, 128, False), *stage(128, 256, False),
        *stage(256, 512, False), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))


def test_identity_shortcut_keeps_shape() -> None:
    blk = Residual(3, 3)
    assert blk(torch.rand(4, 3, 6, 6)).shape == (4, 3, 6, 6)


def test_1x1_shortcut_halves_and_widens() -> None:
    blk = Residual(3, 6, use_1x1conv=True, strides=2)
    assert blk(torch.rand(4, 3, 6, 6)).shape == (4, 6, 3, 3)


def test_residual_forward_matches_the_formula() -> None:
    torch.manual_seed(0)
    blk = Residual(3, 6, use_1x1conv=True, strides=2).eval()
    X = torch.randn(2, 3, 8, 8)
    Y = F.relu(blk.bn1(blk.conv1(X)))
    expected = F.relu(blk.bn2(blk.conv2(Y)) + blk.conv3(X))
    torch.testing.assert_close(blk(X), expected)


def test_zero_bn2_makes_the_block_relu_of_identity() -> None:
    blk = Residual(4, 4).eval()
    nn.init.zeros_(blk.bn2.weight)
    nn.init.zeros_(blk.bn2.bias)
    X = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(blk(X), F.relu(X))


@pytest.mark.parametrize(("args", "facts"), [((3, 6), ["3 -> 6", "use_1x1conv=True"]),
                                            ((3, 3, False, 2), ["stride 2", "use_1x1conv=True"])])
def test_an_identity_shortcut_that_cannot_be_added_is_refused_when_built(
        args: tuple, facts: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Residual(*args)
    assert all(fact in str(info.value) for fact in facts), str(info.value)


def test_the_plain_block_is_the_residual_block_without_its_shortcut() -> None:
    torch.manual_seed(0)
    plain = PlainBlock(3, 6, strides=2).eval()
    X = torch.randn(2, 3, 8, 8)
    Y = F.relu(plain.bn1(plain.conv1(X)))
    torch.testing.assert_close(plain(X), F.relu(plain.bn2(plain.conv2(Y))))
    assert plain(X).shape == Residual(3, 6, use_1x1conv=True, strides=2)(X).shape


def test_the_plain_twins_have_the_same_3x3_layers_and_no_shortcut() -> None:
    def convs(net: nn.Module) -> list[tuple[int, ...]]:
        return [tuple(m.weight.shape) for m in net.modules() if isinstance(m, nn.Conv2d)
                and m.kernel_size == (3, 3)]

    for residual, plain in ((resnet18(), resnet18(residual=False)),
                            (small_image_net(20), small_image_net(20, residual=False))):
        assert convs(residual) == convs(plain)
        assert not any(isinstance(m, Residual) for m in plain.modules())
        assert plain(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_the_small_image_family_has_6n_plus_2_layers() -> None:
    net = small_image_net(56)
    weighted = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
                and getattr(m, "kernel_size", (3, 3)) != (1, 1)]
    assert len(weighted) == 56
    X = torch.rand(2, 1, 28, 28)
    assert net[0](X).shape == (2, 16, 28, 28)
    assert net[3](net[2](net[1](net[0](X)))).shape == (2, 64, 7, 7)
    for bad in (21, 2, 20.0):
        with pytest.raises(ValueError, match="6n \\+ 2"):
            small_image_net(bad)  # type: ignore[arg-type]


def test_resnet_block_pattern() -> None:
    first = resnet_block(64, 64, 2, first_block=True)
    assert [b.conv3 is None for b in first] == [True, True]
    later = resnet_block(64, 128, 3)
    assert later[0].conv3 is not None and later[0].strides == 2
    assert [b.conv3 is None for b in later[1:]] == [True, True]
    with pytest.raises(ValueError, match="num_residuals"):
        resnet_block(64, 64, 0)
    with pytest.raises(ValueError, match="first_block"):
        resnet_block(64, 128, 2, first_block=True)


@pytest.mark.parametrize(("size", "expected"), [(224, SOURCE_224), (28, AT_28)])
def test_layer_by_layer_shapes(size: int, expected: list) -> None:
    # eval mode: at 28x28 b5's BatchNorm sees one value per channel for a batch of one.
    net = resnet18().eval()
    X = torch.rand(1, 1, size, size)
    rows = []
    for layer in net:  # the source notebook's loop
        X = layer(X)
        rows.append((layer.__class__.__name__, tuple(X.shape)))
    assert rows == expected


def test_parameter_count_matches_an_independent_reference() -> None:
    assert count_parameters(resnet18()) == count_parameters(_reference_resnet18())
    assert count_parameters(resnet18(num_classes=100, in_channels=3)) == (
        count_parameters(_reference_resnet18()) + 2 * 64 * 7 * 7 + 90 * 512 + 90)


def test_resnet18_is_the_sources_sequential() -> None:
    net = resnet18()
    assert type(net) is nn.Sequential and len(net) == 8
    assert [type(m).__name__ for m in net[5:]] == ["AdaptiveAvgPool2d", "Flatten", "Linear"]


def test_resnet18_input_errors() -> None:
    net = resnet18()
    with pytest.raises(ValueError, match=r"expected 1 input channel.*\(N, 1, H, W\)"):
        net(torch.rand(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"4-D batch.*\(N, 1, H, W\)"):
        net(torch.rand(1, 28, 28))
    with pytest.raises(ValueError, match=r"too small.*at least 17"):
        net(torch.rand(2, 1, 16, 16))
    net.eval()
    assert net(torch.rand(2, 1, MIN_SIZE, MIN_SIZE)).shape == (2, 10)


def _reference_flops(net: nn.Module, X: torch.Tensor) -> int:
    """Conv and linear FLOPs computed from the layer definitions, without hooks."""
    total = 0
    outputs = {}

    def record(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
        outputs[module] = out.shape

    hs = [m.register_forward_hook(record) for m in net.modules()
          if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(X)
    for h in hs:
        h.remove()
    for m, shape in outputs.items():
        n_out = torch.Size(shape).numel()
        k = m.weight[0].numel()  # conv: in_channels * kh * kw; linear: in_features
        total += 2 * k * n_out + n_out
    return total


@pytest.mark.parametrize("size", [28, 96, 224])
def test_summary_rows_and_totals(size: int) -> None:
    net = resnet18()
    rows = summarize(net, (1, 1, size, size))
    assert len(rows) == 8
    assert sum(r.params for r in rows) == count_parameters(net)
    assert sum(r.flops for r in rows) == _reference_flops(net, torch.zeros(1, 1, size, size))
    table = format_summary(rows)
    assert table.splitlines()[-1].startswith("total")
    assert f"{count_parameters(net):,}" in table


def test_summary_of_a_network_without_parameters() -> None:
    rows = summarize(nn.Sequential(nn.MaxPool2d(2), nn.Flatten()), (1, 1, 4, 4))
    assert [(r.output_shape, r.params, r.flops) for r in rows] == [((1, 1, 2, 2), 0, 0),
                                                                  ((1, 4), 0, 0)]


def test_summary_restores_training_mode_and_checks_input() -> None:
    net = resnet18()
    net.train()
    summarize(net, (2, 1, 28, 28))
    assert net.training
    with pytest.raises(ValueError, match="too small"):
        summarize(net, (1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        summarize(net, (1, 28, 28))


# -- initialization and the matrix-product convolution


@pytest.mark.parametrize("scheme", ["xavier", "kaiming", "default"])
def test_init_depends_only_on_the_generator_at_the_call(scheme: str) -> None:
    torch.manual_seed(1)
    a = resnet18()
    torch.manual_seed(2)
    torch.rand(7)
    b = resnet18()
    for net in (a, b):
        torch.manual_seed(0)
        init_weights(net, scheme)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                  b.state_dict().values(), strict=True))
    torch.manual_seed(0)
    fresh = resnet18()                       # the same draws as building it after the seed
    if scheme == "default":
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                      fresh.state_dict().values(), strict=True))


def test_kaiming_init_starts_each_residual_branch_at_zero() -> None:
    net = init_weights(resnet18(), "kaiming")
    blocks = [m for m in net.modules() if isinstance(m, Residual)]
    assert len(blocks) == 8 and all(torch.all(b.bn2.weight == 0) for b in blocks)
    others = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)
              and not any(m is b.bn2 for b in blocks)]
    assert len(others) == 9 and all(torch.all(m.weight == 1) for m in others)
    X = torch.rand(3, 64, 8, 8)             # post-ReLU input: the block is the identity
    block = init_weights(nn.Sequential(Residual(64, 64)), "kaiming").eval()
    torch.testing.assert_close(block(X), X)
    paper = init_weights(resnet18(), "kaiming", zero_init_residual=False)   # He et al. 2015
    assert all(torch.all(m.weight == 1) for m in paper.modules()
               if isinstance(m, nn.BatchNorm2d))
    xavier = init_weights(resnet18(), "xavier")
    w = xavier[0][0].weight                               # 64 x 1 x 7 x 7
    bound = math.sqrt(6 / (1 * 49 + 64 * 49))
    assert float(w.detach().abs().max()) <= bound


def _assert_same_values_and_gradients(conv: nn.Conv2d, fast: MatmulConv2d, X: torch.Tensor,
                                      Y: torch.Tensor, Y_fast: torch.Tensor
                                      ) -> tuple[torch.Tensor, ...]:
    """Y_fast equals Y, and so do their gradients for X, the weight and the bias (for the
    same random output gradient); returns the fast module's gradients."""
    torch.testing.assert_close(Y_fast, Y, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(Y)
    grads = torch.autograd.grad(Y, (X, conv.weight, conv.bias), g)
    grads_fast = torch.autograd.grad(Y_fast, (X, fast.weight, fast.bias), g)
    for a, b in zip(grads, grads_fast, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    return grads_fast


@pytest.mark.parametrize(("c_in", "c_out", "size", "kernel", "stride"), [
    (16, 24, 1, 3, 1),     # b5's 3x3 convolutions on a 1x1 map
    (16, 24, 2, 3, 2),     # b5's first convolution: 2x2 -> 1x1
    (16, 24, 2, 1, 2),     # b5's 1x1 shortcut
    (16, 24, 2, 3, 1),     # b4's 3x3 convolutions on 2x2 maps: the dense linear map
    (16, 24, 3, 3, 1),     # 3x3 maps, still at most kh*kw pixels
    (16, 24, 3, 3, 2),     # a stride with some taps on padding only
    (16, 24, 4, 3, 2),     # b4's first convolution, 4x4 -> 2x2: the patches' product
    (16, 24, 4, 1, 2),     # b4's 1x1 shortcut
    (16, 24, 5, 3, 2),     # 5x5 -> 3x3: falls back to nn.Conv2d
    (16, 24, 4, 3, 1),     # larger maps: falls back to nn.Conv2d
])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_matmul_conv_matches_conv2d_in_value_and_gradient(c_in: int, c_out: int, size: int,
                                                          kernel: int, stride: int,
                                                          layout: torch.memory_format) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    fast = MatmulConv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    fast.load_state_dict(conv.state_dict())
    fast.to(memory_format=layout)
    X = torch.randn(5, c_in, size, size).contiguous(memory_format=layout).requires_grad_()
    Y, Y_fast = conv(X), fast(X)
    assert Y_fast.shape == Y.shape
    grads_fast = _assert_same_values_and_gradients(conv, fast, X, Y, Y_fast)
    if layout is torch.channels_last:   # the fast setting: the gradient needs no conversion
        assert grads_fast[1].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(("size", "kernel", "stride", "padding", "path"), [
    ((1, 1), 3, 1, 1, "one pixel"),
    ((2, 2), 3, 1, 1, "_dense"),
    ((4, 4), 3, 2, 1, "_patches"),
    ((4, 5), 3, (2, 3), 1, "_patches"),          # not square: rows and columns apart
    ((4, 2), (3, 1), (2, 1), (1, 0), "_patches"),
    ((4, 4), 3, 1, 1, "nn.Conv2d"),
])
def test_matmul_conv_takes_the_path_its_shapes_call_for(
        monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], kernel: Any, stride: Any,
        padding: Any, path: str) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, kernel, stride=stride, padding=padding)
    fast = MatmulConv2d(6, 5, kernel, stride=stride, padding=padding)
    fast.load_state_dict(conv.state_dict())
    X = torch.randn(3, 6, *size, requires_grad=True)
    Y = conv(X)
    calls: list[str] = []

    def recording(name: str, method: Any) -> Any:
        return lambda *args: calls.append(name) or method(*args)

    for name in ("_dense", "_patches"):
        monkeypatch.setattr(MatmulConv2d, name, recording(name, getattr(MatmulConv2d, name)))
    monkeypatch.setattr(nn.Conv2d, "forward", recording("nn.Conv2d", nn.Conv2d.forward))
    Y_fast = fast(X)
    assert calls == ([] if path == "one pixel" else [path])
    _assert_same_values_and_gradients(conv, fast, X, Y, Y_fast)


def test_use_matmul_convs_keeps_parameters_and_outputs() -> None:
    torch.manual_seed(0)
    net = resnet18().eval()
    X = torch.randn(2, 1, 28, 28)
    expected = net(X)
    keys, params = list(net.state_dict()), [id(p) for p in net.parameters()]
    use_matmul_convs(net)
    assert sum(isinstance(m, MatmulConv2d) for m in net.modules()) == 20
    assert list(net.state_dict()) == keys and [id(p) for p in net.parameters()] == params
    torch.testing.assert_close(net(X), expected, rtol=1e-4, atol=1e-5)
