"""Profiles: one switch for how much work the notebooks and the CLI do.

``quick`` is for tests and nbval (every notebook in under a minute on 2 CPU cores),
``course`` (the default) is the full data set at 28x28 tuned for a laptop CPU, ``d2l`` is
the book's settings for a GPU. Choose with the environment variable
``D2L_RESNET_PROFILE`` or an explicit name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
    """

    name: str
    num_epochs: int
    lr: float
    batch_size: int
    resize: int | None
    train_subset: int | None
    test_subset: int | None

    @property
    def quick(self) -> bool:
        """True for the small profile used by tests and nbval."""
        return self.name == "quick"


PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", num_epochs=2, lr=0.1, batch_size=128, resize=None,
                     train_subset=4096, test_subset=1024),
    "course": Profile("course", num_epochs=6, lr=0.1, batch_size=256, resize=None,
                      train_subset=None, test_subset=None),
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
