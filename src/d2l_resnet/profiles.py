"""Profiles: one switch for how much work the notebooks and the CLI do.

``quick`` is for tests and nbval (every notebook in under a minute on 2 CPU cores),
``course`` (the default) is the full data set at 28x28 tuned for a laptop CPU, ``d2l`` is
the book's settings for a GPU. Choose with the environment variable
``D2L_RESNET_PROFILE`` or an explicit name.

Each profile also carries a training recipe (:meth:`Profile.train_kwargs` gives the
keyword arguments of :func:`d2l_resnet.train.train`):

- ``d2l``: the book's recipe, unchanged: Xavier init, plain SGD at a constant lr 0.05,
  no augmentation, pixels in [0, 1], fp32, 96x96 images, 10 epochs.
- ``course``: what reaches the highest test accuracy in about ten minutes on a 2-core
  CPU at 28x28. Each choice buys accuracy per second:

  * Kaiming init with each residual branch's last BatchNorm at zero: every block
    starts as the identity, so a high rate is safe from the first step.
  * SGD with Nesterov momentum 0.9 and a one-cycle rate (warm-up to 0.1, cosine down to
    nearly zero): fast progress early, a careful finish.
  * Weight decay 5e-4 and label smoothing 0.1: less over-confidence, better test accuracy.
  * Random horizontal flips: more data for free (clothes are left-right symmetric).
    Shifts of 2 pixels as well regularized too much for a dozen epochs: the network
    underfit (train accuracy 0.924, test 0.918 in a 12-epoch run with them).
  * Normalized inputs, bfloat16 autocast, channels-last memory, the convolutions of b4
    and b5 as matrix products (:class:`d2l_resnet.train.MatmulConv2d`) and a fused
    SGD kernel: the CPU's fast paths. Thirteen epochs fit in ten minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PROFILE", "PROFILES", "PROFILE_ENV", "Profile", "get_profile"]

PROFILE_ENV = "D2L_RESNET_PROFILE"
DEFAULT_PROFILE = "course"


@dataclass(frozen=True)
class Profile:
    """Settings shared by the notebooks and the CLI.

    Attributes:
        name: ``quick``, ``course`` or ``d2l``.
        num_epochs: Training epochs.
        lr: Peak learning rate.
        batch_size: Examples per step.
        resize: Side length the images are resized to, or None for 28x28.
        train_subset: How many training examples to use (None: all 60,000).
        test_subset: How many test examples to score (None: all 10,000).
        momentum: SGD momentum (0: plain SGD, as the book).
        nesterov: Nesterov momentum.
        weight_decay: L2 penalty.
        label_smoothing: Label smoothing of the cross-entropy loss.
        schedule: ``"constant"`` or ``"onecycle"`` (see :func:`d2l_resnet.train.train`).
        init: ``"xavier"`` (the source), ``"kaiming"`` or ``"default"``.
        augment: Random horizontal flips (and shifts) of the training images.
        max_shift: Largest random shift of ``augment``, in pixels (0: flips only).
        normalize: Normalize the inputs (False: pixels in [0, 1], as ``ToTensor``).
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        channels_last: Channels-last memory format.
        matmul_convs: Compute one-pixel-output convolutions as matrix products.
        seed: Seeds initialisation, shuffling and augmentation.
    """

    name: str
    num_epochs: int
    lr: float
    batch_size: int
    resize: int | None
    train_subset: int | None
    test_subset: int | None
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    schedule: str = "constant"
    init: str = "xavier"
    augment: bool = False
    max_shift: int = 2
    normalize: bool = False
    precision: str = "fp32"
    channels_last: bool = False
    matmul_convs: bool = False
    seed: int = 0

    @property
    def quick(self) -> bool:
        """True for the small profile used by tests and nbval."""
        return self.name == "quick"

    def train_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`d2l_resnet.train.train` for this recipe."""
        return {"num_epochs": self.num_epochs, "lr": self.lr, "momentum": self.momentum,
                "nesterov": self.nesterov, "weight_decay": self.weight_decay,
                "label_smoothing": self.label_smoothing, "schedule": self.schedule,
                "init": self.init, "precision": self.precision,
                "channels_last": self.channels_last, "matmul_convs": self.matmul_convs,
                "seed": self.seed}

    def data_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`d2l_resnet.data.load_data_fashion_mnist_fast`."""
        return {"batch_size": self.batch_size, "resize": self.resize,
                "augment": self.augment, "max_shift": self.max_shift,
                "normalize": self.normalize, "seed": self.seed,
                "train_subset": self.train_subset, "test_subset": self.test_subset}


_COURSE_RECIPE: dict[str, Any] = {
    "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "label_smoothing": 0.1,
    "schedule": "onecycle", "init": "kaiming", "augment": True, "max_shift": 0,
    "normalize": True,
    "precision": "bf16", "channels_last": True, "matmul_convs": True,
}

PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", num_epochs=2, lr=0.1, batch_size=128, resize=None,
                     train_subset=4096, test_subset=1024, **_COURSE_RECIPE),
    "course": Profile("course", num_epochs=13, lr=0.1, batch_size=256, resize=None,
                      train_subset=None, test_subset=None, **_COURSE_RECIPE),
    "d2l": Profile("d2l", num_epochs=10, lr=0.05, batch_size=256, resize=96,
                   train_subset=None, test_subset=None),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$D2L_RESNET_PROFILE``, else ``course``."""
    chosen = name if name is not None else os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)
    key = chosen.strip().lower()
    if key not in PROFILES:
        source = "argument" if name is not None else f"${PROFILE_ENV}"
        raise ValueError(
            f"unknown profile {chosen!r} (from the {source}); expected one of "
            f"{', '.join(PROFILES)}"
        )
    return PROFILES[key]
