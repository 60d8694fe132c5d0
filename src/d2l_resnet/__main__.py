"""``python -m d2l_resnet``: see :mod:`d2l_resnet.cli`."""

from d2l_resnet.cli import main

raise SystemExit(main())
