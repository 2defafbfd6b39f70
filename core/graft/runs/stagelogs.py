"""Where a stage's callbacks write while it trains (TensorBoard's logs, ``history.csv``), and how that joins the stage.

A stage folder appears only once the stage has finished (``graft.records.rundir``), but
TensorBoard is watched while training runs.  So the chief writes in
``<out>/<stage>.training/`` (``tensorboard --logdir <out>`` shows it live); when the
stage is published, everything in it moves into the stage folder, and the folder
is removed whatever happens, so an interrupted or failed stage leaves nothing
behind.  The other workers of a ``multi_worker`` run write in a temporary folder
of their own, deleted the same way: only the chief's logs are published.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from graft.records.rundir import RunDir

TRAINING = ".training"


@contextmanager
def training_folder(run_dir: RunDir, stage: str, chief: bool, needed: bool) -> Iterator[str | None]:
    """The folder the stage's callbacks write in while it trains (None if ``needed`` is false), removed on exit."""
    if not needed:
        yield None
        return
    if chief:
        folder = run_dir.stage_path(stage + TRAINING)
        if os.path.isdir(folder) and not os.path.islink(folder):
            shutil.rmtree(folder)  # left by a stage that died while training: keras-graft's own
        else:
            run_dir.set_aside(stage + TRAINING)  # a file or a link of that name is not ours to delete
        os.makedirs(folder)
    else:
        folder = tempfile.mkdtemp(prefix=f"graft-{stage}-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_into(folder: str | None, stage_folder: str) -> None:
    """Move what the callbacks wrote in ``folder`` into the stage folder being published."""
    if folder is None:
        return
    for name in sorted(os.listdir(folder)):
        target = os.path.join(stage_folder, name)
        if os.path.lexists(target):
            raise FileExistsError(f"{target}: a callback's file has the name of a file of the stage")
        shutil.move(os.path.join(folder, name), target)
