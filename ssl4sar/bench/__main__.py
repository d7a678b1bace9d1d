"""``python -m ssl4sar.bench``."""

import sys

from ssl4sar.bench.cli import main

sys.exit(main())
