"""``python -m graft``: the same as the ``graft`` command (and how ``--local-workers`` starts each worker)."""

import signal
import sys

from graft.base.signals import exit_code
from graft.commands.cli import script

try:
    code = script()
except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM before or after main's own handling (imports, exit)
    code = exit_code(interrupt)
# The command has ended and said why: a second Ctrl-C or SIGTERM (a launcher passing a signal on to its
# worker's process group, a scheduler repeating it) must not interrupt the interpreter's shutdown, where it
# surfaces as a traceback from an exit handler.
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.exit(code)
