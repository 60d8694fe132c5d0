"""Maintainer tools of the d2l-resnet repository (not part of the ``d2l_resnet`` package)."""
