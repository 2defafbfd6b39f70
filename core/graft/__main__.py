"""``python -m graft``: the same as the ``graft`` command."""

import sys

from graft.cli import main

sys.exit(main())
