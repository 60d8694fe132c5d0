"""d2l_resnet: the shared code of the d2l-resnet notebooks.

The notebooks import everything they reuse from here, so each idea is written once:

- :mod:`d2l_resnet.model`: ``Residual``, ``resnet_block``, ``resnet18`` and a summary.
- :mod:`d2l_resnet.data`: Fashion-MNIST, found offline or online, verified, loaded.
- :mod:`d2l_resnet.profiles`: the ``quick`` / ``course`` / ``d2l`` settings.
"""

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

__version__ = "0.1.0"

__all__ = [
    "Profile",
    "Residual",
    "count_parameters",
    "format_summary",
    "get_profile",
    "resnet18",
    "resnet_block",
    "run_info",
    "show_source",
    "summarize",
]
