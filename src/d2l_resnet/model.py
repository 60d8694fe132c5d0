"""The residual block, ResNet-18 as in the course notebook, its initialization, and a
layer-by-layer summary.

Names follow the source notebook and the book (`input_channels`, `num_channels`,
`use_1x1conv`, `strides`, `num_residuals`, `first_block`) so that a student can read
both side by side. The last section is an appendix for speed on a CPU:
:class:`MatmulConv2d` computes the convolutions of the tiny feature maps of the last
stages as matrix products, with the same parameters and results.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from d2l_resnet.checks import check_choice, check_positive_int

__all__ = [
    "INITS",
    "MIN_SIZE",
    "InputCheck",
    "LayerSummary",
    "MatmulConv2d",
    "PlainBlock",
    "Residual",
    "check_image_batch",
    "count_parameters",
    "format_summary",
    "init_weights",
    "resnet18",
    "resnet_block",
    "small_image_net",
    "summarize",
    "use_matmul_convs",
]


class Residual(nn.Module):
    """A residual block: two 3x3 convolutions with BatchNorm, plus a shortcut.

    ``Y = ReLU(BN(conv2(ReLU(BN(conv1(X))))) + shortcut(X))``, where the shortcut is the
    identity or, with ``use_1x1conv=True``, a 1x1 convolution that changes the number of
    channels and the stride so that the two terms of the sum have the same shape.

    Args:
        input_channels: Channels of the input ``X``.
        num_channels: Channels of the output.
        use_1x1conv: Put a 1x1 convolution on the shortcut. Needed whenever
            ``input_channels != num_channels`` or ``strides != 1``.
        strides: Stride of the first 3x3 convolution (and of the 1x1 shortcut).
    """

    def __init__(
        self,
        input_channels: int,
        num_channels: int,
        use_1x1conv: bool = False,
        strides: int = 1,
    ) -> None:
        super().__init__()
        for name, value in (("input_channels", input_channels), ("num_channels", num_channels),
                            ("strides", strides)):
            check_positive_int(name, value)
        if not use_1x1conv and (input_channels != num_channels or strides != 1):
            changes = " and ".join(
                what for what, differs in (
                    (f"the channels ({input_channels} -> {num_channels})",
                     input_channels != num_channels),
                    (f"height and width (stride {strides})", strides != 1)) if differs)
            raise ValueError(f"the identity shortcut cannot change {changes}, so X and F(X) "
                             f"could not be added; build the block with use_1x1conv=True "
                             f"to project X to F(X)'s shape")
        self.input_channels = input_channels
        self.num_channels = num_channels
        self.strides = strides
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1,
                               stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = (nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
                      if use_1x1conv else None)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))   # (N, num_channels, H/strides, W/strides)
        Y = self.bn2(self.conv2(Y))           # F(X), the residual branch
        if self.conv3 is not None:
            X = self.conv3(X)                 # the shortcut, projected to Y's shape
        return F.relu(Y + X)



class PlainBlock(nn.Module):
    """The residual block without its shortcut, for *plain* networks: ``Y = ReLU(F(X))``.

    The same two 3x3 convolutions with BatchNorm as :class:`Residual`, and nothing added:
    a network of these blocks is the "plain" twin of a ResNet (He et al. 2015, Sec. 4).
    """

    def __init__(self, input_channels: int, num_channels: int, strides: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1,
                               stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        return F.relu(self.bn2(self.conv2(Y)))


def resnet_block(
    input_channels: int,
    num_channels: int,
    num_residuals: int,
    first_block: bool = False,
    residual: bool = True,
) -> list[nn.Module]:
    """The residual blocks of one ResNet stage, as a list (wrap it in ``nn.Sequential``).

    The first block of every stage but the first halves height and width (stride 2) and
    changes the number of channels, so it needs the 1x1 shortcut; the others keep shapes.

    Args:
        input_channels: Channels entering the stage.
        num_channels: Channels of every block in the stage.
        num_residuals: How many residual blocks.
        first_block: True for the stage right after the stem, whose max-pool has already
            halved the resolution: it keeps stride 1 and needs
            ``input_channels == num_channels``.
        residual: False builds the plain twin: :class:`PlainBlock`, no shortcuts.
    """
    check_positive_int("num_residuals", num_residuals)
    if first_block and input_channels != num_channels:
        raise ValueError(
            f"first_block=True keeps the identity shortcut, so input_channels "
            f"({input_channels}) must equal num_channels ({num_channels})"
        )
    blk: list[nn.Module] = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2)
                       if residual else PlainBlock(input_channels, num_channels, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels) if residual
                       else PlainBlock(num_channels, num_channels))
    return blk


class InputCheck:
    """A forward pre-hook that rejects a batch ResNet-18 cannot take, with a clear message.

    Without it, a wrong shape fails deep inside a convolution with an error that names
    weights and kernels instead of the input the user passed.
    """

    def __init__(self, in_channels: int, min_size: int) -> None:
        self.in_channels = in_channels
        self.min_size = min_size

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        check_image_batch(inputs[0], self.in_channels, self.min_size)


def check_image_batch(X: torch.Tensor, in_channels: int, min_size: int = 17) -> None:
    """Raise ``ValueError`` unless ``X`` is ``(N, in_channels, H, W)`` with H, W >= min_size."""
    expected = f"(N, {in_channels}, H, W)"
    if not isinstance(X, torch.Tensor) or X.dim() != 4:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(
            f"expected a 4-D batch of images of shape {expected}, got {shape}; "
            f"add a batch dimension with X.unsqueeze(0) for a single image"
        )
    if X.shape[1] != in_channels:
        raise ValueError(
            f"expected {in_channels} input channel(s), shape {expected}, got "
            f"{tuple(X.shape)}; build the network with resnet18(in_channels={X.shape[1]}) "
            f"or convert the images"
        )
    if min(X.shape[2:]) < min_size:
        raise ValueError(
            f"images of {X.shape[2]}x{X.shape[3]} are too small: the stride chain needs "
            f"H and W of at least {min_size}; got {tuple(X.shape)}, expected {expected} "
            f"with H, W >= {min_size} (resize the images, e.g. resize=96)"
        )


# Five stride-2 steps (b1's conv and max-pool, the first blocks of b3, b4, b5) divide the
# size by 32. The last one, in b5, must still receive at least 2x2 pixels: ceil(H/16) >= 2.
MIN_SIZE = 17


def resnet18(num_classes: int = 10, in_channels: int = 1, residual: bool = True
             ) -> nn.Sequential:
    """ResNet-18 exactly as the source notebook builds it (1 input channel by default).

    ``nn.Sequential(b1, b2, b3, b4, b5, AdaptiveAvgPool2d, Flatten, Linear)``, so that
    ``for layer in net`` yields the same 8 layers as the source. It takes images of at
    least ``MIN_SIZE`` (17) pixels a side: 224x224 as in the source, 96x96 as in the
    book, 28x28 as Fashion-MNIST comes; an :class:`InputCheck` pre-hook rejects others.
    ``residual=False`` gives its plain twin: the same 3x3 layers, no shortcuts.
    """
    check_positive_int("num_classes", num_classes)
    check_positive_int("in_channels", in_channels)
    b1 = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3),
                       nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True, residual=residual))
    b3 = nn.Sequential(*resnet_block(64, 128, 2, residual=residual))
    b4 = nn.Sequential(*resnet_block(128, 256, 2, residual=residual))
    b5 = nn.Sequential(*resnet_block(256, 512, 2, residual=residual))
    net = nn.Sequential(b1, b2, b3, b4, b5,
                        nn.AdaptiveAvgPool2d((1, 1)),
                        nn.Flatten(), nn.Linear(512, num_classes))
    net.register_forward_pre_hook(InputCheck(in_channels, MIN_SIZE))
    return net



def small_image_net(depth: int, residual: bool = True, num_classes: int = 10,
                    in_channels: int = 1) -> nn.Sequential:
    """He et al.'s networks for small images (2015, Sec. 4.2, the CIFAR-10 family).

    A 3x3 convolution with 16 channels, then three stages of ``n`` blocks (``2n`` 3x3
    layers each) with 16, 32 and 64 channels, the second and third starting with stride 2,
    then global average pooling and a linear layer: ``6n + 2`` layers with weights, so
    ``depth`` is 20, 32, 44, 56, 110, ... At 28x28 the stages see 28x28, 14x14 and 7x7
    maps. Where a stage changes the shape, the shortcut is a 1x1 convolution (the
    paper's option B; on CIFAR-10 it padded the identity with zeros, option A).

    Args:
        depth: Layers with weights, ``6n + 2``.
        residual: False gives the plain network of the same depth (no shortcuts).
        num_classes: Outputs.
        in_channels: Channels of the input images.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 for a whole n >= 1 (20, 32, 44, 56, 110, "
                         f"...), got {depth!r}")
    n = (depth - 2) // 6
    stem = nn.Sequential(nn.Conv2d(in_channels, 16, kernel_size=3, padding=1),
                         nn.BatchNorm2d(16), nn.ReLU())
    return nn.Sequential(stem,
                         nn.Sequential(*resnet_block(16, 16, n, True, residual)),
                         nn.Sequential(*resnet_block(16, 32, n, residual=residual)),
                         nn.Sequential(*resnet_block(32, 64, n, residual=residual)),
                         nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
                         nn.Linear(64, num_classes))

# -- initialization -------------------------------------------------------------------

INITS = ("xavier", "kaiming", "default")


def init_weights(net: nn.Module, scheme: str = "xavier", *, zero_init_residual: bool = True
                 ) -> nn.Module:
    """Initialise the parameters of ``net`` in place, drawing from PyTorch's generator.

    Every layer is first reset to PyTorch's default draw (``reset_parameters``, in the
    order the layers were built), then the scheme is applied. So the result depends only
    on the generator's state at the call: after ``set_seed(s)`` the same network comes
    out, whatever was drawn before (the source's biases, which its Xavier init leaves
    alone, included).

    Args:
        net: The network.
        scheme: ``"xavier"``: Xavier-uniform weights, as the source (biases untouched).
            ``"kaiming"``: He-normal weights for the ReLU convolutions (fan-out, as
            torchvision's ResNet), zero biases, and the last BatchNorm of each residual
            branch started at zero, so each block starts as the identity (Goyal et al.
            2017; torchvision's ``zero_init_residual``): the signal passes unchanged
            through the shortcuts at first, which lets a short run use a large rate.
            ``"default"``: PyTorch's initialization.
        zero_init_residual: With ``"kaiming"``, start each residual branch at zero
            (False: every BatchNorm scale at 1, as He et al. 2015).

    Returns:
        ``net``, for chaining.
    """
    check_choice("init", scheme, INITS)
    for m in net.modules():
        if m is not net and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    if scheme == "default":
        return net
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    if scheme == "kaiming" and zero_init_residual:
        for m in net.modules():
            if isinstance(m, Residual):
                nn.init.zeros_(m.bn2.weight)    # the branch's last BatchNorm: F(X) = 0
    return net


# -- the summary --------------------------------------------------------------------------


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@dataclass(frozen=True)
class LayerSummary:
    """One row of :func:`summarize`."""

    name: str
    output_shape: tuple[int, ...]
    params: int
    flops: int


def _layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    """FLOPs of a convolution or linear layer, a multiply-add counted as 2, bias adds as 1.

    BatchNorm, ReLU, pooling and the residual additions cost one or two operations per
    element, under 1% of the total here, and are left out, as is usual.
    """
    if isinstance(module, nn.Conv2d):
        macs_per_output = module.kernel_size[0] * module.kernel_size[1] * (
            module.in_channels // module.groups)
    elif isinstance(module, nn.Linear):
        macs_per_output = module.in_features
    else:
        return 0
    bias = output.numel() if module.bias is not None else 0
    return 2 * macs_per_output * output.numel() + bias


def summarize(net: nn.Sequential, input_shape: tuple[int, ...] = (1, 1, 224, 224)
              ) -> list[LayerSummary]:
    """One row per top-level layer of ``net``: output shape, parameters and forward FLOPs.

    Runs a zero input of ``input_shape`` through the layers one by one, as the source's
    ``for layer in net`` loop does, in eval mode and without gradients; the network's
    training/eval mode is restored afterwards. FLOPs are for the whole batch.
    """
    if not isinstance(net, nn.Sequential):
        raise ValueError(f"summarize expects an nn.Sequential, got {type(net).__name__}")
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C, H, W), got {input_shape!r}")
    first = next(net.parameters(), None)
    X = torch.zeros(input_shape) if first is None else torch.zeros(
        input_shape, dtype=first.dtype, device=first.device)
    for hook in net._forward_pre_hooks.values():  # e.g. resnet18's InputCheck
        if isinstance(hook, InputCheck):
            hook(net, (X,))
    flops: list[int] = []

    def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        flops.append(_layer_flops(module, output))

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = net.training
    rows = []
    try:
        net.eval()
        with torch.no_grad():
            for layer in net:
                flops.clear()
                X = layer(X)
                rows.append(LayerSummary(layer.__class__.__name__, tuple(X.shape),
                                         count_parameters(layer), sum(flops)))
    finally:
        net.train(was_training)
        for h in handles:
            h.remove()
    return rows


def format_summary(rows: list[LayerSummary]) -> str:
    """The rows of :func:`summarize` as a text table with a total line."""
    lines = [f"{'layer':<18}{'output shape':<22}{'parameters':>12}{'MFLOPs':>12}"]
    for r in rows:
        lines.append(f"{r.name:<18}{r.output_shape!s:<22}{r.params:>12,}"
                     f"{r.flops / 1e6:>12.1f}")
    total_params = sum(r.params for r in rows)
    total_flops = sum(r.flops for r in rows)
    lines.append(f"{'total':<40}{total_params:>12,}{total_flops / 1e6:>12.1f}")
    return "\n".join(lines)


# -- appendix: a faster convolution for the tiny maps of the last stages (CPU) ----------


class MatmulConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes as one matrix product on tiny feature maps.

    At 28x28 the last stages of ResNet-18 see 2x2 (b4) and 1x1 (b5) feature maps, where a
    padded 3x3 convolution multiplies most of its taps by zero padding and oneDNN's
    convolution is slow. On such maps a convolution is a plain linear map from the
    ``H*W*C`` input numbers to the ``Ho*Wo*O`` output numbers; this module computes it
    as one matrix product, which the CPU's matrix units run many times faster:

    - one output pixel (b5): the kernel taps that meet real pixels are cut out, and
      ``Y = X @ W.T + b``;
    - maps of at most ``kh*kw`` pixels (b4's 2x2): the kernel is spread into the
      ``(Ho*Wo*O, H*W*C)`` matrix of the linear map (each weight copied to every place
      it is applied, zero where a tap meets padding);
    - outputs of at most 4 pixels from larger maps (b4's first convolution and its
      shortcut, 4x4 to 2x2): each output pixel's patch of inputs is gathered into a row
      (im2col), and ``Y = patches @ W.T + b``.

    All three read the input and the weight channels last, ``(N, H, W, C)`` and
    ``(O, kh, kw, C)``: in the channels-last memory format these are views, so nothing
    is copied but the spread weight or the gathered patches (and the weight's gradient
    comes back in its own layout). The outputs and gradients are those of ``nn.Conv2d``
    (up to rounding), the parameters and the ``state_dict`` are the same; other shapes
    fall back to ``nn.Conv2d``.
    """

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        N, C, H, W = X.shape
        kh, kw = self.kernel_size
        sh, sw = self.stride
        if (self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros"
                or isinstance(self.padding, str)):
            return super().forward(X)
        ph, pw = self.padding
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        if Ho == 1 and Wo == 1:
            # The single output pixel reads input rows 0..r-1 and columns 0..c-1 through
            # taps ph..ph+r-1 and pw..pw+c-1 of the kernel; the others meet only padding.
            r, c = min(H, kh - ph), min(W, kw - pw)
            cols = X.permute(0, 2, 3, 1)[:, :r, :c].reshape(N, r * c * C)  # (N, r*c*C)
            weight = (self.weight.permute(0, 2, 3, 1)[:, ph:ph + r, pw:pw + c]
                      .reshape(self.out_channels, r * c * C))                # (O, r*c*C)
            Y = nn.functional.linear(cols, weight, self.bias)                  # (N, O)
            return Y.view(N, self.out_channels, 1, 1)
        if H * W <= kh * kw:   # noqa: SIM300 (reads: no more pixels than taps)
            return self._dense(X, Ho, Wo)
        if Ho * Wo <= 4:
            return self._patches(X, Ho, Wo)
        return super().forward(X)

    def _patches(self, X: torch.Tensor, Ho: int, Wo: int) -> torch.Tensor:
        """The convolution as one matrix product over its patches (im2col): output pixel
        (i, j) reads padded input pixel (i*sh + a, j*sw + b) through tap (a, b)."""
        N, C, H, W = X.shape
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        Hp, Wp = H + 2 * ph, W + 2 * pw
        Xp = nn.functional.pad(X, (pw, pw, ph, ph)).permute(0, 2, 3, 1).reshape(N, Hp * Wp, C)
        rows = (torch.arange(Ho) * sh)[:, None, None, None] + torch.arange(kh)[:, None]
        cols = (torch.arange(Wo) * sw)[:, None, None] + torch.arange(kw)
        index = (rows * Wp + cols).flatten().to(X.device)           # (Ho, Wo, kh, kw)
        # One gather of C-long rows makes the patches (its backward adds them back up).
        patches = Xp.index_select(1, index).view(N * Ho * Wo, kh * kw * C)
        weight = self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, kh * kw * C)
        Y = nn.functional.linear(patches, weight, self.bias)                  # (N*Ho*Wo, O)
        return Y.view(N, Ho, Wo, self.out_channels).permute(0, 3, 1, 2)      # channels-last

    def _dense(self, X: torch.Tensor, Ho: int, Wo: int) -> torch.Tensor:
        """The convolution as a linear map: input pixel (a, b) reaches output pixel (i, j)
        through tap (a - i*sh + ph, b - j*sw + pw), when that tap exists."""
        N, C, H, W = X.shape
        out = self.out_channels
        kh, kw = self.kernel_size
        taps = self.weight.permute(0, 2, 3, 1).reshape(out * kh * kw, C)     # rows (o, tap)
        index, padded = self._dense_index(H, W, Ho, Wo, X.device)
        if padded:                      # a zero row for the taps that fall on padding
            taps = nn.functional.pad(taps, (0, 0, 0, 1))
        # Row (i, j, o) of the linear map, column (a, b, c): one gather of C-long rows
        # spreads the weights (its backward adds them back up).
        weight = taps.index_select(0, index).view(Ho * Wo * out, H * W * C)
        bias = self.bias.repeat(Ho * Wo) if self.bias is not None else None
        Xf = X.permute(0, 2, 3, 1).reshape(N, H * W * C)                      # (N, H*W*C)
        Y = nn.functional.linear(Xf, weight, bias)                             # (N, Ho*Wo*O)
        return Y.view(N, Ho, Wo, out).permute(0, 3, 1, 2)                      # channels-last

    def _dense_index(self, H: int, W: int, Ho: int, Wo: int, device: torch.device
                     ) -> tuple[torch.Tensor, bool]:
        """For each (i, j, o, a, b), the row of ``taps`` that :meth:`_dense` gathers (the
        zero row ``out*kh*kw`` where the tap falls on padding), and whether any does."""
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        rows = torch.arange(H)[None, :] - torch.arange(Ho)[:, None] * sh + ph    # (Ho, H)
        cols = torch.arange(W)[None, :] - torch.arange(Wo)[:, None] * sw + pw    # (Wo, W)
        tap = rows[:, None, :, None] * kw + cols[None, :, None, :]             # (Ho, Wo, H, W)
        valid = (((rows >= 0) & (rows < kh))[:, None, :, None]
                 & ((cols >= 0) & (cols < kw))[None, :, None, :])
        o = torch.arange(self.out_channels)[None, None, :, None, None]
        index = torch.where(valid[:, :, None], o * (kh * kw) + tap[:, :, None],
                            self.out_channels * kh * kw)                     # (Ho, Wo, O, H, W)
        return index.flatten().to(device), not bool(valid.all())


def use_matmul_convs(net: nn.Module) -> nn.Module:
    """Replace every ``nn.Conv2d`` of ``net`` by a :class:`MatmulConv2d` sharing its parameters.

    Nothing changes but the speed: same parameters (the same tensors), same
    ``state_dict``, same outputs. Returns ``net``.
    """
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d:
                new = MatmulConv2d(child.in_channels, child.out_channels, child.kernel_size,
                                   stride=child.stride, padding=child.padding,
                                   dilation=child.dilation, groups=child.groups,
                                   bias=child.bias is not None, padding_mode=child.padding_mode,
                                   device="meta")
                new.weight = child.weight
                new.bias = child.bias
                setattr(parent, name, new)
    return net
