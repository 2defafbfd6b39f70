"""The ``graft`` command keeps TensorFlow's import-time heap out of the garbage collector's way; the API does not."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from graft.base.backend import import_keras


def test_the_python_api_leaves_the_callers_collector_alone():
    import_keras()
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
def test_the_command_freezes_what_the_first_keras_import_leaves():
    code = ("import gc, sys; from graft.base.backend import freeze_heap_after_import, import_keras; "
            "before = gc.get_freeze_count(); freeze_heap_after_import(); import_keras(); "
            "sys.exit(0 if before == 0 and gc.get_freeze_count() > 100_000 else 1)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
