"""``python -m ssl4sar.bench``."""

import sys

from ssl4sar.commands.bench import main

sys.exit(main())
