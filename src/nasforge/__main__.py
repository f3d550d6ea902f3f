"""``python -m nasforge`` is the command line."""

import sys

from nasforge.cli.main import main

sys.exit(main())
