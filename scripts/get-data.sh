#!/bin/sh
# Make Fashion-MNIST available to the project, offline if need be.
# 1. `python -m d2l_resnet data` looks in $D2L_RESNET_DATA, data/, the Debian package's
#    folder, then tries torchvision's download; it verifies and unpacks what it finds.
# 2. If that fails, on Debian/Ubuntu as root, install the package dataset-fashion-mnist
#    (it needs no access to the data set's own mirrors) and try again.
set -u
PY=${PY:-.venv/bin/python}
if "$PY" -m d2l_resnet data; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "==> Fashion-MNIST not found or not downloadable: installing the Debian package"
    echo "    dataset-fashion-mnist (apt-get), which puts it in /usr/share/datasets/fashion-mnist"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist \
        || { echo "apt-get install dataset-fashion-mnist failed"; exit 1; }
    exec "$PY" -m d2l_resnet data
fi
echo "Fashion-MNIST is missing. Get it one of these ways, then run make again:" >&2
echo "  - sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu)" >&2
echo "  - put the four files train-images-idx3-ubyte(.gz) ... in data/ or in a folder named" >&2
echo "    by the environment variable D2L_RESNET_DATA" >&2
exit 1
