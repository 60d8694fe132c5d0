"""d2l_resnet: the shared code of the d2l-resnet notebooks.

The notebooks import everything they reuse from here, so each idea is written once:

- :mod:`d2l_resnet.model`: ``Residual``, ``resnet_block``, ``resnet18``, their
  initialisation, a layer-by-layer summary, and (an appendix for CPU speed) the
  matrix-product convolution.
- :mod:`d2l_resnet.data`: Fashion-MNIST in three modules: ``fashion_mnist`` (finding and
  verifying the files), ``dataloader`` (the source's pipeline), ``in_memory`` (the fast
  loader, the validation split, the shares of a distributed run).
- :mod:`d2l_resnet.profiles`: the :class:`Recipe` (how to train, written once) and the
  ``quick`` / ``course`` / ``d2l`` profiles that hold one.
- :mod:`d2l_resnet.train`: ``accuracy``, ``evaluate_accuracy``, ``train_epoch`` (one
  epoch, as notebook 04 shows it) and ``train`` (a whole run, returning a history).
- :mod:`d2l_resnet.checkpoint`: checkpoints, written atomically.
- :mod:`d2l_resnet.devices`: the device and the precision, chosen by what the machine
  computes natively.
- :mod:`d2l_resnet.distributed`: data-parallel training across processes (torchrun);
  :mod:`d2l_resnet.launch` starts such processes, :mod:`d2l_resnet.parallel` measures
  what they compute and cost (notebook 6, ``bench ddp``).
- :mod:`d2l_resnet.gradients`: deep plain and residual stacks, per-layer gradient norms.
- :mod:`d2l_resnet.plot`: the figures (the only module that imports matplotlib, so it is
  not imported here).
- :mod:`d2l_resnet.diagrams`: the notebooks' diagrams, SVG drawn by code
  (``python -m d2l_resnet.diagrams notebooks/figures`` writes them as files).
- :mod:`d2l_resnet.bench` and :mod:`d2l_resnet.experiments`: the measurements behind
  ``python -m d2l_resnet bench`` and the committed results under ``results/``.
- :mod:`d2l_resnet.notebook`: small helpers of the notebooks (``show_source``,
  ``run_info``, the progress bar); :mod:`d2l_resnet.checks`: argument checks.
- :mod:`d2l_resnet.cli`: ``python -m d2l_resnet data | train | bench | experiment``.
"""

from d2l_resnet.data import (
    FASHION_MNIST_LABELS,
    get_fashion_mnist_labels,
    load_data_fashion_mnist,
    load_data_fashion_mnist_fast,
)
from d2l_resnet.devices import get_device, try_gpu
from d2l_resnet.model import (
    Residual,
    count_parameters,
    format_summary,
    resnet18,
    resnet_block,
    summarize,
)
from d2l_resnet.notebook import run_info, show_source
from d2l_resnet.profiles import Profile, Recipe, get_profile
from d2l_resnet.train import accuracy, evaluate_accuracy, train, train_epoch

__version__ = "0.1.0"

__all__ = [
    "FASHION_MNIST_LABELS",
    "Profile",
    "Recipe",
    "Residual",
    "accuracy",
    "count_parameters",
    "evaluate_accuracy",
    "format_summary",
    "get_device",
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
    "train_epoch",
    "try_gpu",
]
