"""``python -m rdam.cli``."""

import sys

from rdam.cli import main

sys.exit(main())
