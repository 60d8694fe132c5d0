"""d2l_resnet: the shared code of the d2l-resnet notebooks.

The notebooks import everything they reuse from here, so each idea is written once.
The teaching core, in the order the course meets it:

- :mod:`d2l_resnet.model`: ``Residual``, ``resnet_block``, ``resnet18`` (and its plain
  twin), He et al.'s small-image networks, their initialization, a layer-by-layer
  summary; an appendix for CPU speed (the matrix-product convolution).
- :mod:`d2l_resnet.data`: Fashion-MNIST: finding and verifying the files, the source's
  DataLoader, the fast in-memory loader with its validation split.
- :mod:`d2l_resnet.profiles`: the :class:`Recipe` (how to train, written once) and the
  ``quick`` / ``course`` / ``d2l`` profiles that hold one.
- :mod:`d2l_resnet.train`: ``accuracy``, ``evaluate_accuracy``, ``train_epoch`` (one
  epoch, as notebook 04 shows it) and ``train`` (a whole run, returning a history).
- :mod:`d2l_resnet.devices`: the device and the precision, chosen by what the machine
  computes natively; :mod:`d2l_resnet.checkpoint`: files written atomically.
- :mod:`d2l_resnet.gradients`: deep plain and residual stacks, gradients measured.
- :mod:`d2l_resnet.results`: the committed results under ``results/``, read back.
- :mod:`d2l_resnet.plot`: the figures (the only module that imports matplotlib, so it is
  not imported here); :mod:`d2l_resnet.notebook`: ``show_source``, ``run_info``, the
  progress bar; :mod:`d2l_resnet.checks`: argument checks.

The machinery around them (the command line, benchmarks, experiment runners, training
across processes with ``torchrun``, diagrams) is :mod:`d2l_resnet.extras`, which
imports the core and never the reverse.
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
