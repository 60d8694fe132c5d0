"""Training and evaluation: the source notebook's ``train`` loop, made correct and fast.

The source's loop, read top to bottom, has two defects that this module fixes:

- ``evaluate_accuracy_gpu`` returns inside its loop, so it scores the first batch only;
  :func:`evaluate_accuracy` scores the whole data set (in eval mode, without gradients,
  and puts the network back in the mode it found it in).
- The test accuracy is computed once, after the last epoch; :func:`train` scores the
  test set after every epoch and returns a :class:`History`.

It adds what a run on a laptop needs: seeding (:func:`set_seed`), the choice of a device
(:func:`try_gpu`, :func:`get_device`), bfloat16 autocast and ``channels_last`` on the
CPU, a stop with a clear message when the loss diverges (the source's ``lr = 0.9``),
and checkpoints written atomically after every epoch, from which a run resumes to the
same final metrics as a run that was never interrupted.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from d2l_resnet.checks import check_positive_int
from d2l_resnet.notebook import progress_bar

__all__ = [
    "DivergenceError",
    "History",
    "MatmulConv2d",
    "accuracy",
    "confusion_matrix",
    "evaluate_accuracy",
    "get_device",
    "init_weights",
    "load_checkpoint",
    "load_data_for_profile",
    "predict",
    "save_checkpoint",
    "set_seed",
    "train",
    "try_gpu",
    "use_matmul_convs",
]

INITS = ("xavier", "kaiming", "default")
SCHEDULES = ("constant", "onecycle")
PRECISIONS = ("fp32", "bf16")


# -- small pieces: accuracy, devices, seeds, initialisation -------------------------------


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """The number of correct predictions (not the fraction), as the source's ``accuracy``.

    Args:
        y_hat: Scores of shape (N, num_classes), or predicted classes of shape (N,).
        y: True classes, shape (N,).
    """
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)                   # (N,)
    if y_hat.shape != y.shape:
        raise ValueError(f"predictions of shape {tuple(y_hat.shape)} do not match labels of "
                         f"shape {tuple(y.shape)}; expected (N, num_classes) scores or (N,) "
                         f"classes for N labels")
    return float((y_hat.to(y.dtype) == y).sum())


def try_gpu(i: int = 0) -> torch.device:
    """``cuda:i`` if that GPU exists, else the CPU (the source's ``try_gpu``)."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f"cuda:{i}")
    return torch.device("cpu")


def get_device(name: str | torch.device | None = None) -> torch.device:
    """The device called ``name``: ``"auto"`` or None (a GPU if any), ``"cpu"``, ``"cuda:0"``...

    Raises:
        ValueError: If the name is not a device, or names a GPU this machine lacks.
    """
    if name is None or (isinstance(name, str) and name.strip().lower() == "auto"):
        return try_gpu()
    try:
        device = torch.device(name.strip().lower() if isinstance(name, str) else name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {name!r}; expected 'auto', 'cpu', 'cuda' or "
                         f"'cuda:N'") from err
    if device.type == "cuda":
        index = device.index or 0
        if torch.cuda.device_count() <= index:
            raise ValueError(f"device {name!r} is not available: this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s); use 'cpu' or 'auto'")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {name!r} is not available here; use 'cpu' or 'auto'")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; expected 'auto', 'cpu', 'cuda', "
                         f"'cuda:N' or 'mps'")
    return device


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (every device).

    On one machine, the same seed then gives the same run; different CPUs or library
    versions may still differ in the last bits of floating-point sums.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)          # also seeds every CUDA device


def init_weights(net: nn.Module, scheme: str = "xavier") -> nn.Module:
    """Initialise the weights of ``net``'s convolutions and linear layers in place.

    Args:
        net: The network.
        scheme: ``"xavier"``: Xavier-uniform weights, as the source (biases untouched).
            ``"kaiming"``: He-normal weights for the ReLU convolutions (fan-out, as
            torchvision's ResNet), zero biases, and the last BatchNorm of each residual
            branch started at zero, so each block starts as the identity (Goyal et al.
            2017; torchvision's ``zero_init_residual``): the signal passes unchanged
            through the shortcuts at first, which lets a short run use a large rate.
            ``"default"``: leave PyTorch's initialisation.

    Returns:
        ``net``, for chaining.
    """
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; expected one of {', '.join(INITS)}")
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
    if scheme == "kaiming":
        for m in net.modules():
            bn2 = getattr(m, "bn2", None)
            if isinstance(bn2, nn.BatchNorm2d):
                nn.init.zeros_(bn2.weight)
    return net


# -- a faster convolution for the last stage at 28x28 -----------------------------------------


class MatmulConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes as one matrix product on tiny feature maps.

    At 28x28 the last stages of ResNet-18 see 2x2 (b4) and 1x1 (b5) feature maps, where a
    padded 3x3 convolution multiplies most of its taps by zero padding and oneDNN's
    convolution is slow. On such maps a convolution is a plain linear map from the
    ``C*H*W`` input numbers to the ``O*Ho*Wo`` output numbers; this module computes it
    as one matrix product, which the CPU's matrix units run many times faster:

    - one output pixel (b5): the kernel taps that meet real pixels are cut out, and
      ``Y = X @ W.T + b``;
    - maps of at most ``kh*kw`` pixels (b4's 2x2): the kernel is spread into the
      ``(C*H*W, O*Ho*Wo)`` matrix of the linear map (each weight copied to every place
      it is applied, zero where a tap meets padding).

    The outputs and gradients are those of ``nn.Conv2d`` (up to rounding), the
    parameters and the ``state_dict`` are the same; other shapes fall back to
    ``nn.Conv2d``.
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
            cols = X[:, :, :r, :c].reshape(N, C * r * c)                      # (N, C*r*c)
            weight = self.weight[:, :, ph:ph + r, pw:pw + c].reshape(self.out_channels, -1)
            Y = nn.functional.linear(cols, weight, self.bias)                  # (N, O)
            return Y.view(N, self.out_channels, 1, 1)
        if H * W > kh * kw:   # noqa: SIM300 (reads: more pixels than taps)
            return super().forward(X)
        return self._dense(X, Ho, Wo)

    def _dense(self, X: torch.Tensor, Ho: int, Wo: int) -> torch.Tensor:
        """The convolution as a linear map: input pixel (a, b) reaches output pixel (i, j)
        through tap (a - i*sh + ph, b - j*sw + pw), when that tap exists."""
        N, C, H, W = X.shape
        out = self.out_channels
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        dev = X.device
        rows = (torch.arange(H, device=dev)[:, None] - torch.arange(Ho, device=dev) * sh
                + ph)                                                          # (H, Ho)
        cols = (torch.arange(W, device=dev)[:, None] - torch.arange(Wo, device=dev) * sw
                + pw)                                                          # (W, Wo)
        # place[t, (a, i, b, j)] = 1 where tap t joins input (a, b) to output (i, j).
        tap = rows[:, :, None, None] * kw + cols[None, None, :, :]            # (H, Ho, W, Wo)
        valid = (((rows >= 0) & (rows < kh))[:, :, None, None]
                 & ((cols >= 0) & (cols < kw))[None, None, :, :])
        place = (torch.arange(kh * kw, device=dev)[:, None] == tap[valid].flatten()[None, :])
        full = torch.zeros(kh * kw, H * Ho * W * Wo, device=dev, dtype=self.weight.dtype)
        full[:, valid.flatten()] = place.to(full.dtype)
        # A matrix product spreads the weights (its backward gathers them back).
        taps = (self.weight.reshape(out * C, kh * kw) @ full).view(out, C, H, Ho, W, Wo)
        # Rows of the linear map: (i, j, o), output channels last; columns: (a, b, c).
        weight = taps.permute(3, 5, 0, 2, 4, 1).reshape(Ho * Wo * out, H * W * C)
        bias = self.bias.repeat(Ho * Wo) if self.bias is not None else None
        Xf = X.permute(0, 2, 3, 1).reshape(N, H * W * C)                      # (N, H*W*C)
        Y = nn.functional.linear(Xf, weight, bias)                             # (N, Ho*Wo*out)
        return Y.view(N, Ho, Wo, out).permute(0, 3, 1, 2)                      # channels-last


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


# -- evaluation -----------------------------------------------------------------------------


def _autocast(device: torch.device, precision: str):
    """The autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    enabled = precision == "bf16"
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def _to_device(X: torch.Tensor, y: torch.Tensor, device: torch.device,
               channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    X = X.to(device, non_blocking=True)
    if channels_last:
        X = X.contiguous(memory_format=torch.channels_last)
    return X, y.to(device, non_blocking=True)


def evaluate_accuracy(net: nn.Module, data_iter: Iterable, device: torch.device | str | None
                      = None, *, precision: str = "fp32", channels_last: bool = False
                      ) -> float:
    """The accuracy of ``net`` on every example of ``data_iter``.

    Unlike the source's ``evaluate_accuracy_gpu`` (which returns inside its loop, after the
    first batch), this scores the whole data set. It runs in eval mode (BatchNorm uses its
    running statistics) under ``torch.no_grad``, and restores the mode ``net`` was in.

    Args:
        net: The network.
        data_iter: Batches ``(X, y)``.
        device: Where to compute (default: the device of ``net``'s parameters).
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        channels_last: Feed the batches in channels-last memory format.

    Raises:
        ValueError: If ``data_iter`` yields no example.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of "
                         f"{', '.join(PRECISIONS)}")
    device = next(net.parameters()).device if device is None else torch.device(device)
    was_training = net.training
    correct, total = 0.0, 0
    net.eval()
    try:
        with torch.no_grad(), _autocast(device, precision):
            for X, y in data_iter:
                X, y = _to_device(X, y, device, channels_last)
                correct += accuracy(net(X), y)
                total += y.numel()
    finally:
        net.train(was_training)
    if total == 0:
        raise ValueError("data_iter yielded no example; pass a non-empty data set")
    return correct / total


def predict(net: nn.Module, data_iter: Iterable, device: torch.device | str | None = None,
            *, precision: str = "fp32", channels_last: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true classes of every example of ``data_iter`` (both int64 (N,), CPU).

    Runs like :func:`evaluate_accuracy`: eval mode, no gradients, mode restored.
    """
    device = next(net.parameters()).device if device is None else torch.device(device)
    was_training = net.training
    preds, trues = [], []
    net.eval()
    try:
        with torch.no_grad(), _autocast(device, precision):
            for X, y in data_iter:
                X, y = _to_device(X, y, device, channels_last)
                preds.append(net(X).argmax(dim=1).cpu())
                trues.append(y.cpu())
    finally:
        net.train(was_training)
    if not preds:
        raise ValueError("data_iter yielded no example; pass a non-empty data set")
    return torch.cat(preds), torch.cat(trues)


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int = 10
                     ) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    if preds.shape != labels.shape or preds.dim() != 1:
        raise ValueError(f"preds and labels must be 1-D of the same length, got "
                         f"{tuple(preds.shape)} and {tuple(labels.shape)}")
    index = labels.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


def load_data_for_profile(profile: Any, root: str | os.PathLike[str] | None = None,
                          device: torch.device | str | None = None
                          ) -> tuple[Iterable, Iterable]:
    """``(train_iter, test_iter)`` of Fashion-MNIST as a :class:`~d2l_resnet.profiles.Profile`
    asks: its batch size, image size, subsets, normalization and augmentation.

    The in-memory loaders of :func:`d2l_resnet.data.load_data_fashion_mnist_fast`.
    """
    from d2l_resnet.data import load_data_fashion_mnist_fast

    return load_data_fashion_mnist_fast(root=root, device=device, **profile.data_kwargs())


# -- the history of a run --------------------------------------------------------------------


@dataclass
class History:
    """What :func:`train` measured, one entry per epoch (and a few points per epoch).

    Attributes:
        epochs: Epoch numbers 1, 2, ...
        train_loss: Mean training loss over each epoch.
        train_acc: Training accuracy over each epoch (on the batches as trained, in train
            mode, as the book).
        test_acc: Test accuracy after each epoch (the whole test set).
        examples_per_sec: Training examples per second of each epoch (training steps only).
        epoch_time: Seconds of each epoch (training and scoring the test set).
        points: ``(epoch as a fraction, train loss, train acc)`` five times an epoch, as the
            source prints them.
        device: The device the run trained on.
        lr: The (peak) learning rate.
    """

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    examples_per_sec: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    points: list[tuple[float, float, float]] = field(default_factory=list)
    device: str = "cpu"
    lr: float = 0.0

    @property
    def wall_time(self) -> float:
        """Seconds of all epochs together (training and scoring)."""
        return float(sum(self.epoch_time))

    @property
    def train_examples_per_sec(self) -> float:
        """Training examples per second over the whole run (the book's second line)."""
        if not self.examples_per_sec:
            return 0.0
        # The harmonic mean: epochs of equal size, so total examples / total train time.
        return len(self.examples_per_sec) / sum(1 / r for r in self.examples_per_sec)

    def final_lines(self) -> str:
        """The book's two final lines: ``loss L, train acc A, test acc T`` and the speed."""
        if not self.epochs:
            return "no epoch trained"
        return (f"loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.3f}, "
                f"test acc {self.test_acc[-1]:.3f}\n"
                f"{self.train_examples_per_sec:.1f} examples/sec on {self.device}")

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (for checkpoints and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> History:
        """The inverse of :meth:`to_dict`."""
        state = dict(state)
        state["points"] = [tuple(p) for p in state.get("points", [])]
        return cls(**state)


class DivergenceError(RuntimeError):
    """The training loss became NaN, infinite or exploded; the message names the rate."""


# -- checkpoints -----------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically: a temporary file, then a rename.

    A run killed while saving leaves the previous checkpoint intact, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`.

    Raises:
        FileNotFoundError: If there is no file at ``path``.
        ValueError: If the file is not a readable checkpoint of this package.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train without --resume first, or "
                                f"pass the path of an existing checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many kinds for a damaged file
        raise ValueError(f"cannot read the checkpoint {path} ({type(err).__name__}: {err}); "
                         f"it is damaged or not a checkpoint: delete it or pass another "
                         f"path") from err
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError(f"{path} is not a checkpoint written by d2l_resnet.train (expected a "
                         f"dict with 'model' and 'epoch'); delete it or pass another path")
    return state


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- the training loop -----------------------------------------------------------------------


def _check_args(num_epochs: int, lr: float, momentum: float, weight_decay: float,
                label_smoothing: float, schedule: str, precision: str, init: str | None
                ) -> None:
    check_positive_int("num_epochs", num_epochs)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r} (the book uses 0.05)")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of "
                         f"{', '.join(SCHEDULES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of "
                         f"{', '.join(PRECISIONS)}")
    if init is not None and init not in INITS:
        raise ValueError(f"unknown init {init!r}; expected one of {', '.join(INITS)} or None")


def train(
    net: nn.Module,
    train_iter: Iterable,
    test_iter: Iterable,
    num_epochs: int,
    lr: float,
    device: torch.device | str | None = None,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    schedule: str = "constant",
    init: str | None = "xavier",
    precision: str = "fp32",
    channels_last: bool = False,
    matmul_convs: bool = False,
    seed: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = False,
    max_loss: float | None = None,
    verbose: bool = True,
    progress: bool | None = None,
    on_update: Callable[[History], None] | None = None,
    on_epoch_end: Callable[[History], None] | None = None,
) -> History:
    """Train ``net`` with minibatch SGD and score the test set after every epoch.

    The call shape is the source's ``train(net, train_iter, test_iter, num_epochs, lr,
    device)``; with the defaults it trains as the source does (Xavier init, plain SGD,
    constant rate, fp32), minus its defects. The keyword arguments make the recipe of the
    ``course`` profile (see :mod:`d2l_resnet.profiles`).

    Args:
        net: The network; moved to ``device``.
        train_iter: Training batches ``(X, y)``; iterated once per epoch. With a
            ``state_dict`` method (:class:`~d2l_resnet.data.InMemoryLoader`) its position
            is saved in checkpoints.
        test_iter: Test batches, scored in full after every epoch.
        num_epochs: Epochs to train (in total, counting those of a resumed checkpoint).
        lr: Learning rate (the peak rate with ``schedule="onecycle"``).
        device: Where to train (default: a GPU if there is one, else the CPU).
        momentum: SGD momentum.
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty of SGD.
        label_smoothing: Label smoothing of the cross-entropy loss.
        schedule: ``"constant"`` rate, or ``"onecycle"``: warm up to ``lr`` over the first
            quarter of the steps, then anneal (cosine) to nearly zero, stepped per batch.
        init: Weight initialisation (see :func:`init_weights`), or None to keep the weights
            as they are (for fine-tuning).
        precision: ``"fp32"``, or ``"bf16"`` autocast (weights and optimizer stay fp32).
        channels_last: Run the network in channels-last memory format (faster convolutions
            on the CPU).
        matmul_convs: Compute the convolutions of tiny maps (b4 and b5 at 28x28) as
            matrix products (:func:`use_matmul_convs`): same results, faster on the CPU.
        seed: Seed everything first (:func:`set_seed`), so a run can be repeated.
        checkpoint: Save a checkpoint there after every epoch (model, optimizer, schedule,
            epoch, random states, history), atomically.
        resume: Continue from ``checkpoint`` (which must exist): the run ends with the
            same metrics as one that was never interrupted.
        max_loss: Stop with :class:`DivergenceError` when the loss averaged over the
            last 10 steps exceeds this; default ``3 * ln(num_classes)``, three times the
            loss of a uniform guess. A NaN or infinite loss stops the run at once.
        verbose: Print ``training on DEVICE``, one line per epoch and the book's final
            lines.
        progress: A ``tqdm.auto`` bar over each epoch's batches; None: on unless the
            environment sets ``TQDM_DISABLE=1``.
        on_update: Called with the history five times per epoch and after each epoch
            (for a live plot, e.g. :class:`d2l_resnet.plot.LivePlot`).
        on_epoch_end: Called with the history after each epoch (and its checkpoint).

    Returns:
        The :class:`History` of the run (with a resumed run, all of its epochs).

    Raises:
        ValueError: If an argument is out of range, or ``resume`` meets an unreadable
            checkpoint or one of another recipe.
        FileNotFoundError: If ``resume`` finds no checkpoint.
        DivergenceError: If the loss becomes NaN, infinite or larger than ``max_loss``.
    """
    _check_args(num_epochs, lr, momentum, weight_decay, label_smoothing, schedule,
                precision, init)
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path to resume from")
    device = get_device(device)
    if seed is not None:
        set_seed(seed)
    if init is not None:
        init_weights(net, init)
    if matmul_convs:
        use_matmul_convs(net)
    net.to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)

    # The fused SGD kernel updates all parameters in one pass (CPU and CUDA).
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum,
                                nesterov=nesterov and momentum > 0, weight_decay=weight_decay,
                                fused=device.type in ("cpu", "cuda"))
    num_batches = len(train_iter) if isinstance(train_iter, Sized) else None
    scheduler = None
    if schedule == "onecycle":
        if num_batches is None:
            raise ValueError("schedule='onecycle' needs a train_iter with len()")
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=num_epochs * num_batches, pct_start=0.25,
            anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)
    loss = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    recipe = {"lr": lr, "num_epochs": num_epochs, "schedule": schedule,
              "momentum": momentum, "weight_decay": weight_decay,
              "label_smoothing": label_smoothing, "precision": precision,
              "num_batches": num_batches}

    history = History(device=str(device), lr=lr)
    start_epoch = 0
    if resume and checkpoint is not None:
        state = load_checkpoint(checkpoint, map_location=device)
        saved = state.get("recipe", {})
        changed = {k: (saved.get(k), v) for k, v in recipe.items() if saved.get(k) != v}
        if changed:
            diff = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(f"cannot resume from {checkpoint}: it was trained with another "
                             f"recipe ({diff}); resume with the same settings, or start "
                             f"afresh without resume")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        history = History.from_dict(state["history"])
        start_epoch = int(state["epoch"])
        _set_rng_state(state["rng"])
        if state.get("loader") is not None and hasattr(train_iter, "load_state_dict"):
            train_iter.load_state_dict(state["loader"])

    if verbose:
        print(f"training on {device}" + (f", resuming after epoch {start_epoch}"
                                         if start_epoch else ""))

    recent: list[float] = []       # the last 10 losses, for the divergence check
    for epoch in range(start_epoch, num_epochs):
        net.train()
        t0 = time.perf_counter()
        train_time = 0.0
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.float64)
        n = 0
        report_every = max(1, (num_batches or 5) // 5)
        bar = progress_bar(train_iter, progress, total=num_batches,
                           desc=f"epoch {epoch + 1}/{num_epochs}", unit="batch")
        t_step = time.perf_counter()
        for i, (X, y) in enumerate(bar):
            X, y = _to_device(X, y, device, channels_last)
            with _autocast(device, precision):
                y_hat = net(X)
                l = loss(y_hat, y)   # noqa: E741 (the book's name)
            optimizer.zero_grad(set_to_none=True)
            l.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            with torch.no_grad():
                loss_sum += l.detach().double() * y.numel()
                correct += (y_hat.argmax(dim=1) == y).sum()
            n += y.numel()
            l_value = float(l.detach())
            if max_loss is None:       # three times the loss of a uniform guess
                max_loss = 3 * math.log(y_hat.shape[1])
            recent = [*recent[-9:], l_value]
            if not math.isfinite(l_value) or (len(recent) == 10
                                               and sum(recent) / 10 > max_loss):
                what = (f"the loss is {l_value}" if not math.isfinite(l_value) else
                        f"the loss averaged {sum(recent) / len(recent):.2f} over the last "
                        f"{len(recent)} steps, above {max_loss:.2f}")
                raise DivergenceError(
                    f"training diverged with lr={lr:g} at epoch {epoch + 1}, step {i + 1}: "
                    f"{what}. Lower the learning rate (the book uses lr=0.05 for this "
                    f"model; the source's lr=0.9 is too large)")
            if (i + 1) % report_every == 0 or i + 1 == num_batches:
                train_time += time.perf_counter() - t_step
                history.points.append((epoch + (i + 1) / (num_batches or (i + 1)),
                                       float(loss_sum) / n, float(correct) / n))
                if on_update is not None:
                    on_update(history)
                t_step = time.perf_counter()
        train_time += time.perf_counter() - t_step
        if n == 0:
            raise ValueError("train_iter yielded no batch; pass a non-empty data set")
        test_acc = evaluate_accuracy(net, test_iter, device, precision=precision,
                                     channels_last=channels_last)
        history.epochs.append(epoch + 1)
        history.train_loss.append(float(loss_sum) / n)
        history.train_acc.append(float(correct) / n)
        history.test_acc.append(test_acc)
        history.examples_per_sec.append(n / train_time)
        history.epoch_time.append(time.perf_counter() - t0)
        if verbose:
            print(f"epoch {epoch + 1}, loss {history.train_loss[-1]:.3f}, train acc "
                  f"{history.train_acc[-1]:.3f}, test acc {test_acc:.3f}, "
                  f"{history.examples_per_sec[-1]:.0f} examples/sec, "
                  f"{history.epoch_time[-1]:.0f} s")
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "model": net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "epoch": epoch + 1,
                "recipe": recipe,
                "history": history.to_dict(),
                "rng": _rng_state(),
                "loader": (train_iter.state_dict() if hasattr(train_iter, "state_dict")
                           else None),
            })
        if on_update is not None:
            on_update(history)
        if on_epoch_end is not None:
            on_epoch_end(history)
    if verbose:
        print(history.final_lines())
    return history
