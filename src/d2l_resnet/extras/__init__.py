"""The machinery around the lesson; the notebooks teach from the modules above it.

- :mod:`~d2l_resnet.extras.cli`: ``python -m d2l_resnet data | train | bench | experiment``.
- :mod:`~d2l_resnet.extras.distributed`: data-parallel training under ``torchrun`` (the
  process group, synchronized BatchNorm, :func:`train_data_parallel` around the same
  :func:`~d2l_resnet.train.train_epoch`); :mod:`~d2l_resnet.extras.launch` starts such
  processes; :mod:`~d2l_resnet.extras.parallel` holds notebook 06's experiments.
- :mod:`~d2l_resnet.extras.bench` and :mod:`~d2l_resnet.extras.bench_ddp`: the
  measurements of ``python -m d2l_resnet bench``.
- :mod:`~d2l_resnet.extras.experiments`: the experiments behind ``results/``.
- :mod:`~d2l_resnet.extras.diagrams`: the notebooks' diagrams, SVG drawn by code.

These modules import the teaching core (``d2l_resnet.model``, ``data``, ``train``, ...);
the core never imports them.
"""
