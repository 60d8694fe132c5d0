"""``python -m tools.course_site``: write the course site."""

import sys

from tools.course_site.build import main

sys.exit(main())
