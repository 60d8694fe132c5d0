"""Fashion-MNIST for the notebooks, in three modules:

- :mod:`d2l_resnet.data.fashion_mnist`: finding the files (offline or online), verifying
  them, reading them into tensors; the class names.
- :mod:`d2l_resnet.data.dataloader`: the source notebook's pipeline (torchvision's
  dataset, ``ToTensor``, a DataLoader with worker processes).
- :mod:`d2l_resnet.data.in_memory`: the fast path (the whole set as one tensor, batches
  made whole), the validation split and the shares of a distributed run.

Everything is importable from ``d2l_resnet.data`` directly.
"""

from d2l_resnet.data.dataloader import get_dataloader_workers, load_data_fashion_mnist
from d2l_resnet.data.fashion_mnist import (
    DATA_ENV,
    DEBIAN_DIR,
    FASHION_MNIST,
    FASHION_MNIST_LABELS,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    DatasetSpec,
    DataSource,
    get_fashion_mnist_labels,
    load_fashion_mnist_tensors,
    prepare_fashion_mnist,
    project_data_dir,
    read_idx,
)
from d2l_resnet.data.in_memory import (
    DataSplits,
    InMemoryLoader,
    load_data_fashion_mnist_fast,
    load_data_for_profile,
    stratified_subset,
)

__all__ = [
    "DATA_ENV",
    "DEBIAN_DIR",
    "FASHION_MNIST",
    "FASHION_MNIST_LABELS",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "DataSource",
    "DataSplits",
    "DatasetSpec",
    "InMemoryLoader",
    "get_dataloader_workers",
    "get_fashion_mnist_labels",
    "load_data_fashion_mnist",
    "load_data_fashion_mnist_fast",
    "load_data_for_profile",
    "load_fashion_mnist_tensors",
    "prepare_fashion_mnist",
    "project_data_dir",
    "read_idx",
    "stratified_subset",
]
