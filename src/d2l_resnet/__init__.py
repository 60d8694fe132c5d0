"""d2l_resnet: the shared code of the d2l-resnet notebooks.

The notebooks import everything they reuse from here, so each idea is written once:

- :mod:`d2l_resnet.model`: ``Residual``, ``resnet_block``, ``resnet18`` and a summary.
- :mod:`d2l_resnet.data`: Fashion-MNIST, found offline or online, verified, loaded by
  the source's DataLoader pipeline or by a fast in-memory loader.
- :mod:`d2l_resnet.train`: ``accuracy``, ``evaluate_accuracy``, ``train``, checkpoints.
- :mod:`d2l_resnet.gradients`: deep plain and residual stacks, per-layer gradient norms.
- :mod:`d2l_resnet.plot`: the figures (the only module that imports matplotlib, so it is
  not imported here).
- :mod:`d2l_resnet.profiles`: the ``quick`` / ``course`` / ``d2l`` settings.
- :mod:`d2l_resnet.cli`: ``python -m d2l_resnet data | train | bench``.
"""

from d2l_resnet.data import (
    FASHION_MNIST_LABELS,
    get_fashion_mnist_labels,
    load_data_fashion_mnist,
    load_data_fashion_mnist_fast,
)
from d2l_resnet.model import (
    Residual,
    count_parameters,
    format_summary,
    resnet18,
    resnet_block,
    summarize,
)
from d2l_resnet.notebook import run_info, show_source
from d2l_resnet.profiles import Profile, get_profile
from d2l_resnet.train import accuracy, evaluate_accuracy, train, try_gpu

__version__ = "0.1.0"

__all__ = [
    "FASHION_MNIST_LABELS",
    "Profile",
    "Residual",
    "accuracy",
    "count_parameters",
    "evaluate_accuracy",
    "format_summary",
    "get_fashion_mnist_labels",
    "get_profile",
    "load_data_fashion_mnist",
    "load_data_fashion_mnist_fast",
    "resnet18",
    "resnet_block",
    "run_info",
    "show_source",
    "summarize",
    "train",
    "try_gpu",
]
