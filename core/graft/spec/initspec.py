"""``graft validate``'s checks of a stage's ``init`` (no TensorFlow): one source, files there, rename maps.

A model file's layers are read later, by ``graft plan``/``run`` (``graft.model.initsource``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from graft.base.paths import as_written
from graft.base.problems import Path, did_you_mean, listing
from graft.spec.records import Stage
from graft.spec.renaming import rename_problems
from graft.spec.validators import file_problem

SOURCES = "give exactly one of 'stage' (an earlier stage of this spec), 'weights' (a weights.graft.npz file) or "\
    "'model' (a Keras .keras or .h5 file)"


EXTENSIONS = (".keras", ".weights.h5", ".h5")  # the Keras files init.model names


def extension_problem(path: str) -> str | None:
    """Why ``path`` is not a Keras file keras-graft reads, by its name alone (no TensorFlow)."""
    if path.lower().endswith(EXTENSIONS):
        return None
    return (f"{os.path.basename(path)!r} is not a Keras file keras-graft reads: give a {listing(EXTENSIONS)} file "
            "(a weights.graft.npz file goes in init.weights)")


def check_init(resolve: Callable[[str], str], stage: Stage, earlier: Sequence[str], at: Path) -> list[tuple[Path, str]]:
    """Problems of ``stage.init``; ``resolve`` makes a spec path absolute, ``earlier`` are the stages before it."""
    init = stage.init
    if init is None:
        return []
    at = (*at, "init")
    given = [value for value in (init.stage, init.weights, init.model) if value is not None]
    if len(given) != 1:
        return [(at, SOURCES)]
    if init.stage is not None:
        if init.rename:
            return [((*at, "rename"), f"rename is for a file's layers; stage '{init.stage}' built this spec's model, "
                     "whose layers already have its names: remove rename")]
        if init.stage not in earlier:
            if init.stage == stage.name:
                return [((*at, "stage"), f"stage '{stage.name}' cannot start from itself")]
            hint = f"{listing(list(earlier))}{did_you_mean(init.stage, earlier)}"
            return [((*at, "stage"), f"no earlier stage '{init.stage}'; earlier stages: {hint}")]
        return []
    items = [((*at, "rename", *path), message) for path, message in rename_problems(init.rename)]
    if init.weights is not None:
        path = resolve(init.weights)
        problem = file_problem(path, "weights file", as_written(init.weights, path))
        if problem is not None:
            items.append(((*at, "weights"), problem))
    if init.model is not None:
        path = resolve(init.model)
        problem = extension_problem(path) or file_problem(path, "model file", as_written(init.model, path))
        if problem is not None:
            items.append(((*at, "model"), problem))
    return items
