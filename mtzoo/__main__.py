"""``python -m mtzoo`` = the ``mtzoo`` command."""

import sys

from mtzoo.cli.main import main

sys.exit(main())
