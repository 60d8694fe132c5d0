"""``python -m d2l_resnet``: see :mod:`d2l_resnet.extras.cli`."""

from d2l_resnet.extras.cli import main

raise SystemExit(main())
