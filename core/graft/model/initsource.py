"""Where a stage's starting weights come from, one typed source for all three kinds of ``init``:
an earlier stage, a keras-graft weights file (``weights.graft.npz``), a Keras model file.

Planning asks it for each layer's shapes and what keeps a layer from loading; the runner
reads its weights by the names they load as (``init.rename`` applied, ``graft.spec.renaming``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import attrs

from graft.base.paths import as_written, shown_source
from graft.base.problems import Path, SpecProblem
from graft.model.modelfile import ModelFileError, read_model_file
from graft.model.weights import FILENAME, Shapes, Weights, WeightsFileError, read_index, read_weights
from graft.spec.records import Init
from graft.spec.renaming import rename_layers
from graft.spec.specfile import SpecFile

RELOAD = "re-initialise it (policy 'layers' with reinit: [...], or 'replace_head' for heads)"


@attrs.frozen
class SourceLayer:
    """One layer of a file: its name there, where it sits (``encoder/gru_1`` in a nested model), its shapes,
    its class (``""`` where the file does not say)."""

    name: str
    where: str
    shapes: Shapes
    class_name: str = ""


@attrs.frozen
class InitSource:
    """A stage's init source as the plan sees it, by the names layers load as.

    ``shapes`` is None when an earlier stage's model could not be planned; ``file_names`` holds
    the file's own name of each renamed layer; ``clashes`` the file layers that take one name;
    ``layers`` a file's layers as it names them, in its order.
    """

    label: str  # "stage pretrain", "file weights.graft.npz", "model /x/model.keras" (graft.base.paths.shown)
    shapes: dict[str, Shapes] | None
    file_names: dict[str, str] = attrs.field(factory=dict)
    clashes: dict[str, list[str]] = attrs.field(factory=dict)
    from_file: bool = False
    layers: tuple[SourceLayer, ...] = ()

    def problem(self, name: str, shapes: Shapes) -> tuple[str, str] | None:
        """Why layer ``name`` (with ``shapes`` here) cannot load: (the stage field to fix, message), or None."""
        if self.shapes is None:
            return None
        if name in self.clashes:
            wheres = self.clashes[name]
            return "init", (f"layer '{name}' is to be loaded but {len(wheres)} layers of {self.label} load as "
                            f"'{name}': {', '.join(repr(where) for where in wheres)}; keras-graft will not guess "
                            f"which: {RELOAD}, or rename the others in init.rename (where their names differ)")
        if name not in self.shapes:
            extra = " or name the file's layer for it in init.rename" if self.from_file else ""
            return "policy", f"layer '{name}' is to be loaded but {self.label} has no such layer; {RELOAD}{extra}"
        there = self.shapes[name]
        if [tuple(shape) for shape in there] != [tuple(shape) for shape in shapes]:
            renamed = f" (its layer '{self.file_names[name]}')" if name in self.file_names else ""
            return "policy", (f"layer '{name}' has weight shapes {_shapes(shapes)} here but {_shapes(there)} in "
                              f"{self.label}{renamed}; {RELOAD}")
        return None


def _shapes(shapes: Shapes) -> str:
    return ", ".join(str(tuple(shape)) for shape in shapes)


def init_source(spec_file: SpecFile, index: int, earlier_layers: dict[str, Shapes] | None) -> InitSource | None:
    """Stage ``index``'s source, or None for a fresh start; ``earlier_layers`` are the shapes of the stage it
    starts from, if it starts from one (None if that stage could not be planned).  A file that cannot be
    read, or a rename key matching none of its layers, is a ``SpecProblem`` at its YAML path."""
    init = spec_file.spec.stages[index].init
    if init is None:
        return None
    if init.stage is not None:
        return InitSource(f"stage {init.stage}", earlier_layers)
    at: Path = ("stages", index, "init")
    label, layers = _file_layers(spec_file, init, at)
    renamed, problems = rename_layers([layer.name for layer in layers], init.rename, (*at, "rename"))
    problems.raise_all()
    shapes: dict[str, Shapes] = {}
    file_names: dict[str, str] = {}
    clashes: dict[str, list[str]] = {}
    for name, positions in renamed.sources.items():
        first = layers[positions[0]]
        shapes[name] = first.shapes
        if first.name != name:
            file_names[name] = first.name
        if len(positions) > 1:
            clashes[name] = [layers[position].where for position in positions]
    return InitSource(label, shapes, file_names, clashes, from_file=True, layers=tuple(layers))


def _file_layers(spec_file: SpecFile, init: Init, at: Path) -> tuple[str, list[SourceLayer]]:
    if init.model is not None:
        path = spec_file.resolve(init.model)
        try:
            layers = [SourceLayer(layer.name, layer.where, layer.shapes, layer.class_name)
                      for layer in read_model_file(path)]
        except ModelFileError as exc:  # the file as the user wrote it, not as resolved
            raise SpecProblem((*at, "model"), str(exc).replace(path, as_written(init.model, path))) from None
        return shown_source("model", init.model, path), layers
    assert init.weights is not None  # an Init without a stage or a model has weights (graft.spec.initspec)
    path = spec_file.resolve(init.weights)
    try:
        layers = [SourceLayer(name, name, shapes) for name, shapes in read_index(path).items()]
        return shown_source("file", init.weights, path), layers
    except WeightsFileError as exc:
        raise SpecProblem((*at, "weights"), str(exc).replace(path, as_written(init.weights, path))) from None


def source_path(spec_file: SpecFile, index: int, stage_folder: str | None) -> str | None:
    """The file stage ``index`` starts from: ``stage_folder``'s weights for an earlier stage, else the spec's file."""
    init = spec_file.spec.stages[index].init
    if init is None:
        return None
    if init.stage is not None:
        assert stage_folder is not None, "a stage that starts from another is given that stage's folder"
        return os.path.join(stage_folder, FILENAME)
    return spec_file.resolve(init.model if init.model is not None else str(init.weights))


def source_weights(spec_file: SpecFile, index: int, path: str, names: Sequence[str]) -> Weights:
    """The weights of the layers ``names`` (as they load) from ``path``, stage ``index``'s source file."""
    init = spec_file.spec.stages[index].init
    assert init is not None, "a stage that loads layers has an init"
    if init.model is not None:
        layers = read_model_file(path)
        by_position = [list(layer.weights) for layer in layers]
        file_names = [layer.name for layer in layers]
    else:
        weights = read_weights(path)
        by_position, file_names = list(weights.values()), list(weights)
    renamed, problems = rename_layers(file_names, init.rename)
    problems.raise_all()  # the plan checked it: the file changed since
    return {name: by_position[renamed.sources[name][0]] for name in names}
