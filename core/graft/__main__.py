"""``python -m graft``: the same as the ``graft`` command."""

import sys

from graft.commands.cli import main

sys.exit(main())
