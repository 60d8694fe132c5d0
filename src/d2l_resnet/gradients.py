"""Why residual networks train at depth: deep plain and residual stacks, measured.

A *stack* here is a small fully connected network, cheap enough on a CPU to be built a
thousand layers deep: a linear stem, ``depth`` layers of equal width, and a linear head.
Each layer is ``[BatchNorm] -> ReLU -> Linear`` (the pre-activation order of He et al.
2016, "Identity Mappings in Deep Residual Networks"). In a *plain* stack a layer maps
``x -> F(x)``; in its *residual* twin the very same layer adds an identity shortcut,
``x -> x + F(x)``, so the two differ by nothing but the ``+ x``, and the residual one
unrolls exactly to the paper's eq. 4, ``x_L = x_l + sum_{i=l}^{L-1} F(x_i)``.

The module holds what notebook 05 measures: per-layer gradient norms at initialization
(:func:`layer_grad_norms`, for these stacks and for any network's blocks), the Jacobian
products behind the chain-rule argument (:func:`block_jacobians`, :func:`chain_jacobian`),
the correlation of the gradients at nearby inputs (:func:`gradient_correlation`, the
"shattered gradients" of Balduzzi et al. 2017) and a small seeded training run
(:func:`train_stack`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from d2l_resnet.checks import check_choice, check_positive_int, check_range
from d2l_resnet.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    load_fashion_mnist_tensors,
)
from d2l_resnet.notebook import progress_bar

__all__ = [
    "STACK_INITS",
    "DeepStack",
    "StackBlock",
    "TrainHistory",
    "block_jacobians",
    "chain_jacobian",
    "fashion_mnist_features",
    "format_ratio",
    "gradient_correlation",
    "input_gradients",
    "layer_grad_norms",
    "make_stack",
    "train_stack",
    "zero_residual_branches",
]


class StackBlock(nn.Module):
    """One layer of a deep stack: ``[BN] -> ReLU -> Linear``, with or without a shortcut.

    Plain: ``x_{l+1} = F(x_l)``. Residual: ``x_{l+1} = x_l + F(x_l)``, where
    ``F(x) = W ReLU(BN(x)) + b`` (BN only with ``batch_norm=True``). Nothing follows the
    addition, so the shortcut is an exact identity, as in He et al. 2016.

    Args:
        width: Features in and out.
        residual: Add the identity shortcut.
        batch_norm: Put a ``BatchNorm1d`` first in the branch.
    """

    def __init__(self, width: int, residual: bool, batch_norm: bool = False) -> None:
        super().__init__()
        check_positive_int("width", width)
        self.width = width
        self.residual = residual
        self.bn = nn.BatchNorm1d(width) if batch_norm else None
        self.linear = nn.Linear(width, width)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        """``F(x)``: the layer without its shortcut."""
        if self.bn is not None:
            x = self.bn(x)
        return self.linear(F.relu(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branch(x)              # (N, width)
        return x + out if self.residual else out


class DeepStack(nn.Module):
    """``stem -> depth x StackBlock -> head``: a plain or residual fully connected stack.

    The stem is ``Linear(in_features, width)``; the head is ``[BN] -> ReLU ->
    Linear(width, num_classes)``. Inputs of any shape ``(N, ...)`` are flattened first, so
    a batch of images ``(N, 1, H, W)`` works with ``in_features = H * W``.

    Args:
        depth: Number of hidden layers (``StackBlock``), the ``L`` of the notebook.
        width: Features of every hidden layer.
        residual: Give every hidden layer an identity shortcut.
        batch_norm: Use BatchNorm in every hidden layer and in the head.
        in_features: Features of a flattened input.
        num_classes: Outputs of the head.
    """

    def __init__(self, depth: int, width: int = 64, residual: bool = False,
                 batch_norm: bool = False, in_features: int = 64,
                 num_classes: int = 10) -> None:
        super().__init__()
        for name, value in (("depth", depth), ("width", width),
                            ("in_features", in_features), ("num_classes", num_classes)):
            check_positive_int(name, value)
        self.depth = depth
        self.width = width
        self.residual = residual
        self.batch_norm = batch_norm
        self.in_features = in_features
        self.stem = nn.Linear(in_features, width)
        self.layers = nn.ModuleList(StackBlock(width, residual, batch_norm)
                                    for _ in range(depth))
        self.head_bn = nn.BatchNorm1d(width) if batch_norm else None
        self.head = nn.Linear(width, num_classes)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        X = X.flatten(1)                  # (N, in_features)
        if X.shape[1] != self.in_features:
            raise ValueError(
                f"expected inputs with {self.in_features} features once flattened, got "
                f"shape {tuple(X.shape)}; build the stack with in_features={X.shape[1]}"
            )
        x = self.stem(X)                  # (N, width)
        for layer in self.layers:
            x = layer(x)                  # (N, width)
        if self.head_bn is not None:
            x = self.head_bn(x)
        return self.head(F.relu(x))       # (N, num_classes)


#: The initializations :func:`make_stack` offers.
STACK_INITS = ("default", "kaiming")


def make_stack(depth: int, width: int = 64, residual: bool = False,
               batch_norm: bool = False, in_features: int = 64, num_classes: int = 10,
               seed: int | None = 0, dtype: torch.dtype = torch.float32,
               init: str = "default") -> DeepStack:
    """A :class:`DeepStack`, seeded, with PyTorch's default or Kaiming initialization.

    Args:
        depth: Number of hidden layers.
        width: Features of every hidden layer.
        residual: Identity shortcuts around every hidden layer.
        batch_norm: BatchNorm in every hidden layer and in the head.
        in_features: Features of a flattened input.
        num_classes: Outputs.
        seed: Seed for the initial weights (None: use the global generator as it is).
            With the same seed a plain stack and its residual twin get the same weights.
        dtype: ``torch.float64`` to measure gradients far below float32's range.
        init: ``"default"``: PyTorch's ``nn.Linear`` initialization, weights uniform with
            variance ``1 / (3 fan_in)``. ``"kaiming"``: He et al.'s (2015, "Delving Deep
            into Rectifiers") for ReLU networks, normal weights with variance
            ``2 / fan_in`` and zero biases, on every ``Linear``.

    Returns:
        The stack, in training mode.
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    check_choice("init", init, STACK_INITS)
    if seed is not None:
        torch.manual_seed(seed)
    net = DeepStack(depth, width, residual, batch_norm, in_features, num_classes)
    if init == "kaiming":
        for m in net.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return net.to(dtype)


def zero_residual_branches(net: DeepStack) -> DeepStack:
    """Set the weight and bias of every hidden layer's ``Linear`` to zero, in place.

    Every branch then outputs ``F(x) = 0``, so each residual layer is the identity and
    the whole stack of hidden layers passes its input, and its gradient, unchanged.

    Raises:
        ValueError: For a plain stack, where a zero layer would cut the network instead.
    """
    if not isinstance(net, DeepStack):
        raise ValueError(f"expected a DeepStack, got {type(net).__name__}")
    if not net.residual:
        raise ValueError("only a residual stack has branches to zero; this one is plain "
                         "(build it with residual=True)")
    with torch.no_grad():
        for layer in net.layers:
            layer.linear.weight.zero_()
            layer.linear.bias.zero_()
    return net


def _check_labels(X: torch.Tensor, y: torch.Tensor) -> None:
    if y.dim() != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be (N,) labels for X of shape {tuple(X.shape)}, got "
                         f"shape {tuple(y.shape)}")


def layer_grad_norms(net: nn.Module, X: torch.Tensor, y: torch.Tensor,
                     wrt: str = "input", layers: Sequence[nn.Module] | None = None
                     ) -> list[float]:
    """One gradient norm per layer, from one forward and backward pass.

    The loss is the mean cross-entropy of ``net(X)`` against ``y``. The network is left in
    the mode it is in (training mode: BatchNorm uses the batch's statistics) and its
    ``.grad`` fields are cleared before and after.

    Args:
        net: The network to measure: a :class:`DeepStack`, or any network if ``layers``
            names the modules to measure.
        X: Inputs, ``(N, in_features)`` or anything that flattens to it (for a stack).
        y: Class labels, ``(N,)``.
        wrt: ``"input"``: the norm of ``dE/dx_l``, the gradient with respect to the
            input of layer ``l`` (the quantity of He et al. 2016, eq. 5), for the
            whole batch. ``"weight"``: the norm of ``dE/dW_l`` for that layer's
            ``Linear`` weight, what SGD uses to update it (stacks only).
        layers: The modules of ``net`` whose inputs are measured, in the order the
            forward pass meets them, e.g. the residual blocks of a ResNet (default: the
            hidden layers of a :class:`DeepStack`).

    Returns:
        One float per layer, the first for the layer nearest the input.
    """
    check_choice("wrt", wrt, ("input", "weight"))
    if layers is None:
        if not isinstance(net, DeepStack):
            raise ValueError(f"expected a DeepStack, got {type(net).__name__}; for another "
                             f"network pass the modules to measure as layers=[...]")
        layers = list(net.layers)
    elif wrt != "input" or len(layers) == 0:
        raise ValueError(f"layers=[...] measures input gradients: pass wrt='input' and at "
                         f"least one module, got wrt={wrt!r} and {len(layers)} modules")
    _check_labels(X, y)
    inputs: list[torch.Tensor] = []

    def keep_input(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        args[0].retain_grad()
        inputs.append(args[0])

    handles = ([layer.register_forward_pre_hook(keep_input) for layer in layers]
               if wrt == "input" else [])
    net.zero_grad(set_to_none=True)
    try:
        loss = F.cross_entropy(net(X), y)
        loss.backward()
        if wrt == "input":
            if len(inputs) != len(layers):
                raise ValueError(f"the forward pass went through {len(inputs)} of the "
                                 f"{len(layers)} layers; pass modules that net calls once")
            norms = [x.grad.norm().item() for x in inputs]
        else:
            norms = [layer.linear.weight.grad.norm().item() for layer in layers]
    finally:
        for h in handles:
            h.remove()
        net.zero_grad(set_to_none=True)
    return norms


def input_gradients(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``dE/dX``: the gradient of the cross-entropy with respect to each input.

    ``E`` is the cross-entropy summed over the batch, and row ``i`` of the result is
    ``dE/dx_i``: the gradient of example ``i``'s own loss, and, with BatchNorm in training
    mode, also of the others' through the batch statistics that ``x_i`` shares with them
    (in evaluation mode, example ``i``'s alone). The network's mode is left as it is.

    Args:
        net: The network.
        X: Inputs ``(N, ...)``.
        y: Class labels ``(N,)``.

    Returns:
        The gradients, flattened: ``(N, number of input features)``.
    """
    _check_labels(X, y)
    X = X.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(F.cross_entropy(net(X), y, reduction="sum"), X)
    return grad.flatten(1)                                   # (N, features)


def gradient_correlation(net: nn.Module, X: torch.Tensor, y: torch.Tensor,
                         noise: float = 0.01, seed: int = 0) -> list[float]:
    """How alike the gradients at nearby inputs are: one correlation per example.

    Each input ``x`` gets a neighbor ``x + noise * z``, ``z`` standard normal noise of
    the input's shape; the result is the correlation (Pearson's, over the input's
    features) between ``dE/dx`` at the two (:func:`input_gradients`). Near 1 the
    gradient changes smoothly with the input; near 0 the two gradients are as unrelated
    as white noise, what Balduzzi et al. (2017) call *shattered* gradients.

    Args:
        net: The network (its mode is left as it is).
        X: Inputs ``(N, ...)``, e.g. standardized images ``(N, 1, 28, 28)``.
        y: Class labels ``(N,)``: each input and its neighbor share the label.
        noise: Standard deviation of the perturbation, in the units of ``X``.
        seed: Seed of the noise.

    Returns:
        ``N`` correlations, each in ``[-1, 1]``.
    """
    check_range("noise", noise, 0.0, math.inf, low_open=True)
    gen = torch.Generator(device=X.device).manual_seed(seed)
    z = torch.randn(X.shape, generator=gen, dtype=X.dtype, device=X.device)
    g0, g1 = input_gradients(net, X, y), input_gradients(net, X + noise * z, y)
    g0 = g0 - g0.mean(dim=1, keepdim=True)
    g1 = g1 - g1.mean(dim=1, keepdim=True)
    corr = (g0 * g1).sum(dim=1) / (g0.norm(dim=1) * g1.norm(dim=1))
    return corr.tolist()


def block_jacobians(blocks: Sequence[Callable[[torch.Tensor], torch.Tensor]],
                    x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run ``x`` (a vector) through ``blocks`` and take each block's Jacobian on the way.

    Args:
        blocks: Functions mapping a vector ``(d,)`` to a vector ``(d,)``.
        x: The input vector ``(d,)``.

    Returns:
        The Jacobians ``d block_i / d x_i`` at the points ``x_i`` the forward pass
        reaches, each ``(d, d)``, and the output ``x_L``.
    """
    if x.dim() != 1:
        raise ValueError(f"x must be a vector (d,), got shape {tuple(x.shape)}")
    if len(blocks) == 0:
        raise ValueError("blocks must hold at least one function")
    jacobians = []
    for block in blocks:
        jacobians.append(torch.autograd.functional.jacobian(block, x))   # (d, d)
        x = block(x).detach()
    return jacobians, x


def chain_jacobian(jacobians: Sequence[torch.Tensor]) -> torch.Tensor:
    """The chain rule: ``d x_L / d x_0 = J_{L-1} ... J_1 J_0`` for blocks applied in order.

    Args:
        jacobians: ``J_0, J_1, ...``, the first for the block applied first.

    Returns:
        Their product, the last block's Jacobian leftmost.
    """
    if len(jacobians) == 0:
        raise ValueError("jacobians must hold at least one matrix")
    total = jacobians[0]
    for J in jacobians[1:]:
        total = J @ total
    return total


def fashion_mnist_features(num_examples: int, seed: int = 0, pool: int = 2,
                           train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random subset of Fashion-MNIST as normalized, flattened feature vectors.

    The images are standardized with the training set's mean and standard deviation and
    average-pooled ``pool x pool`` (28x28 -> 14x14 for ``pool=2``), which keeps a deep
    fully connected stack cheap on a CPU.

    Args:
        num_examples: Size of the subset.
        seed: Seed of the random choice of examples.
        pool: Side of the average-pooling window: 1 (keep 28x28), 2, 4, 7 or 14.
        train: Take the subset from the training split (else the test split).

    Returns:
        ``(X, y)``: float32 features ``(num_examples, (28 // pool) ** 2)`` and int64
        labels ``(num_examples,)``.
    """
    check_positive_int("num_examples", num_examples)
    if pool not in (1, 2, 4, 7, 14):
        raise ValueError(f"pool must divide 28: one of 1, 2, 4, 7, 14; got {pool!r}")
    images, labels = load_fashion_mnist_tensors(train=train)        # (N, 28, 28) uint8
    if num_examples > len(labels):
        raise ValueError(f"num_examples must be at most {len(labels)}, got {num_examples}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(labels), generator=gen)[:num_examples]
    X = (images[idx].float() / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    X = F.avg_pool2d(X.unsqueeze(1), pool)                          # (n, 1, 28/pool, 28/pool)
    return X.flatten(1), labels[idx]                                # (n, (28/pool)^2), (n,)


@dataclass
class TrainHistory:
    """What :func:`train_stack` returns: the loss of every step, and a name for the run."""

    name: str
    losses: list[float] = field(default_factory=list)

    def final_loss(self, last: int = 20) -> float:
        """Mean loss of the ``last`` steps, a steadier number than the last step alone."""
        if not self.losses:
            raise ValueError(f"run {self.name!r} has no recorded steps")
        tail = self.losses[-last:]
        return sum(tail) / len(tail)


def train_stack(net: nn.Module, X: torch.Tensor, y: torch.Tensor, num_steps: int,
                batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9,
                seed: int = 0, name: str = "", progress: bool | None = None
                ) -> TrainHistory:
    """Train ``net`` with minibatch SGD on the tensors ``X, y``; record every step's loss.

    Minibatches are drawn by a seeded generator, so the same call gives the same batches
    for every network: a plain stack and its residual twin see exactly the same data.

    Args:
        net: The network (put in training mode).
        X: Inputs ``(N, ...)``.
        y: Labels ``(N,)``.
        num_steps: SGD steps.
        batch_size: Examples per step.
        lr: Learning rate.
        momentum: SGD momentum.
        seed: Seed of the minibatch order.
        name: Name of the run, kept in the history (e.g. "plain, 32 layers").
        progress: Show a ``tqdm.auto`` progress bar. None: show it unless the
            environment sets ``TQDM_DISABLE=1`` (see :func:`d2l_resnet.notebook.progress_bar`).

    Returns:
        The training loss of every step.
    """
    check_positive_int("num_steps", num_steps)
    check_positive_int("batch_size", batch_size)
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if X.shape[0] != y.shape[0] or y.dim() != 1:
        raise ValueError(f"X (N, ...) and y (N,) must hold the same examples, got "
                         f"{tuple(X.shape)} and {tuple(y.shape)}")
    if batch_size > X.shape[0]:
        raise ValueError(f"batch_size {batch_size} is larger than the {X.shape[0]} examples")
    steps = progress_bar(range(num_steps), progress, desc=name or "train", unit="step")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    history = TrainHistory(name)
    net.train()
    perm = torch.randperm(X.shape[0], generator=gen)
    pos = 0
    for _ in steps:
        if pos + batch_size > X.shape[0]:
            perm, pos = torch.randperm(X.shape[0], generator=gen), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        loss = F.cross_entropy(net(X[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.losses.append(loss.item())
    return history


def format_ratio(ratio: float) -> str:
    """A positive ratio to one significant digit, e.g. ``3e-4``, ``6``, ``8e1``, ``6e32``.

    Gradient norms across depth span hundreds of orders of magnitude and their trailing
    digits depend on the CPU, so one digit is what notebooks print and compare.
    """
    if not (isinstance(ratio, (int, float)) and math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be a positive finite number, got {ratio!r}")
    mantissa, exponent = f"{ratio:.0e}".split("e")
    exp = int(exponent)
    return mantissa if exp == 0 else f"{mantissa}e{exp}"
