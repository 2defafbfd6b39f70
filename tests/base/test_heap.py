"""The ``graft`` command keeps TensorFlow's import-time heap out of the garbage collector's way; the API does not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

FROZEN = (
    "import gc, sys; from graft.base import backend; before = gc.get_freeze_count(); {setup}"
    "backend.import_keras(); print(gc.get_freeze_count() - before)"
)


def _frozen_by_the_import(setup: str) -> int:
    """How many objects the first ``import_keras`` of a fresh process froze, after ``setup``."""
    done = subprocess.run([sys.executable, "-c", FROZEN.format(setup=setup)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.slow
def test_the_command_freezes_what_the_first_keras_import_leaves_and_the_api_does_not():
    assert _frozen_by_the_import("backend.freeze_heap_after_import(); ") > 100_000  # as graft.commands.cli.script
    assert _frozen_by_the_import("") == 0  # graft.run, graft.load_stage, ... in the caller's process
