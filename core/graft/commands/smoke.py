"""``graft run --smoke``: every stage for one epoch of a few batches, to check a spec end to end in seconds.

The run goes into a throwaway folder that is removed afterwards, unless ``--out`` names
one to keep; the feature cache is not used (it would read every sample).  The output
says which.  A smoke run's stages are not a real run's: its epochs are overridden
(``--set 'stages.*.epochs=1'``), so a later real run into the same ``--out`` stops at
them as run from a different spec (``--restart-from`` the first stage).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

from graft.spec.overrides import Override, parse_override

BATCHES = 3  # training and validation batches per epoch
EPOCHS_OVERRIDE = "stages.*.epochs=1"


def overrides() -> tuple[Override, ...]:
    """What a smoke run sets in the spec: one epoch for every stage."""
    return (parse_override(EPOCHS_OVERRIDE),)


@contextlib.contextmanager
def smoke_folder(out: str | None, log: Callable[[str], None] = print) -> Iterator[str]:
    """The run folder: ``out`` (kept), or a throwaway one removed when the block ends, whatever happened."""
    what = f"every stage 1 epoch of at most {BATCHES} training and {BATCHES} validation batches"
    if out is not None:
        log(f"smoke run: {what}, into {out} (kept; not a real run: --restart-from its first stage to train for real)")
        yield out
        return
    scratch = tempfile.mkdtemp(prefix="graft-smoke-")
    log(f"smoke run: {what}, into a throwaway folder {scratch} (removed afterwards; --out keeps it)")
    try:
        yield os.path.join(scratch, "run")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        log(f"smoke run: removed {scratch}")
