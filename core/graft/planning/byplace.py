"""A Keras file whose layers do not load by name: its layers listed, and the ``init.rename`` (and ``reinit``)
that loads them by class and place, proposed as YAML to paste.

A model trained by hand carries the names Keras gave its layers (``gru``, ``gru_1``, ``gru_2``), while a
spec's extractor names its own (``gru_1``, ``gru_2``, ``gru_3``): the names overlap shifted by one, so by name
the file's second GRU would load into the model's first, and the first error would be about weight shapes.
When a stage that starts from a model file (``init: {model: ...}`` without ``rename``) cannot load its
layers, ``graft plan`` pairs the n-th layer of each class in the file with the n-th of that class in the
model, and shows the file's layers and the rename that pairing needs; when the names collide that way it
says so instead of reporting each layer.  No guess is acted on: the user pastes the proposal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import attrs
import yaml

from graft.base.problems import Path
from graft.model.builder import BuiltModel
from graft.model.initsource import InitSource, SourceLayer
from graft.model.weights import Shapes
from graft.plugins.rounds import Rounds
from graft.spec.renaming import rename_layers
from graft.spec.specfile import SpecFile

REINIT_POLICIES = ("continue", "layers")  # policies whose place the 'layers' policy with reinit can take


def keras_auto_name(class_name: str) -> str:
    """The name Keras gives the first layer of ``class_name`` created without ``name=`` (``GRU`` -> ``gru``,
    ``BatchNormalization`` -> ``batch_normalization``), as Keras's own ``to_snake_case`` makes it."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def keras_named(layer: SourceLayer) -> bool:
    """True if the file's layer has a name Keras gives by itself (``gru``, ``gru_1``, ...)."""
    base = keras_auto_name(layer.class_name)
    return bool(base) and re.fullmatch(rf"{re.escape(base)}(_\d+)?", layer.name) is not None


@attrs.frozen
class ModelLayer:
    """A layer with weights of the stage's model: its name, class and weight shapes."""

    name: str
    class_name: str
    shapes: Shapes


@attrs.frozen
class ByPlace:
    """What the file's layers paired by class and place need: ``rename`` (file name -> model name),
    ``reinit`` (model layer -> why it cannot load), and ``collision``, the sentence saying how the file's
    names overlap the model's shifted, if they do."""

    rename: dict[str, str]
    reinit: dict[str, str]
    collision: str | None = None


def pair_by_place(file_layers: Sequence[SourceLayer], model_layers: Sequence[ModelLayer],
                  fresh: Sequence[str] = ()) -> ByPlace | None:
    """The n-th file layer of each class for the n-th model layer of that class; None when the file does
    not say its layers' classes or the pairing would not load every other layer.  ``fresh``: model layers
    the policy starts fresh anyway."""
    weighted = [layer for layer in file_layers if layer.shapes]
    if not weighted or any(not layer.class_name for layer in weighted):
        return None
    of_class: dict[str, list[SourceLayer]] = {}
    for layer in weighted:
        of_class.setdefault(layer.class_name, []).append(layer)
    rename: dict[str, str] = {}
    reinit: dict[str, str] = {}
    paired: dict[str, SourceLayer] = {}  # model layer -> its file layer
    seen: dict[str, int] = {}
    for mine in model_layers:
        place = seen.get(mine.class_name, 0)
        seen[mine.class_name] = place + 1
        if mine.name in fresh:
            continue
        candidates = of_class.get(mine.class_name, [])
        if place >= len(candidates):
            reinit[mine.name] = (f"the file has {_count(len(candidates), mine.class_name)}, this model's "
                                 f"'{mine.name}' is its {_ordinal(place + 1)}")
            continue
        source = candidates[place]
        paired[mine.name] = source
        if [tuple(shape) for shape in source.shapes] != [tuple(shape) for shape in mine.shapes]:
            reinit[mine.name] = (f"its weight shapes {_shapes(mine.shapes)} differ from those of the file's "
                                 f"'{source.name}', {_shapes(source.shapes)}")
        elif source.name != mine.name:
            rename[source.name] = mine.name
    loaded = {name for name in paired if name not in reinit}
    used = {layer.name for layer in weighted} | {layer.name for layer in model_layers}
    for layer in weighted:  # a file layer left over must not take the name of one loaded
        if layer.name not in rename and layer.name in loaded and paired[layer.name] is not layer:
            spare = next(f"{layer.name}_unused{'' if n == 1 else n}" for n in range(1, len(used) + 2)
                         if f"{layer.name}_unused{'' if n == 1 else n}" not in used)
            rename[layer.name] = spare
            used.add(spare)
    if not _loads(file_layers, model_layers, rename, loaded):
        return None
    return ByPlace(rename, reinit, _collision(weighted, model_layers, paired))


def _loads(file_layers: Sequence[SourceLayer], model_layers: Sequence[ModelLayer], rename: Mapping[str, str],
           loaded: set[str]) -> bool:
    """True if, renamed so (as ``graft.model.initsource`` renames), every layer in ``loaded`` finds exactly
    one file layer, of its shapes."""
    renamed, problems = rename_layers([layer.name for layer in file_layers], rename)
    if problems:
        return False
    for layer in model_layers:
        if layer.name in loaded:
            positions = renamed.sources.get(layer.name, [])
            if len(positions) != 1 or [tuple(s) for s in file_layers[positions[0]].shapes] != [
                tuple(s) for s in layer.shapes
            ]:
                return False
    return True


def _collision(weighted: Sequence[SourceLayer], model_layers: Sequence[ModelLayer],
               paired: Mapping[str, SourceLayer]) -> str | None:
    """How the file's Keras-given names overlap the model's shifted: a model layer whose name a file layer
    of its class has at another place."""
    by_name = {layer.name: layer for layer in weighted}
    for layer in model_layers:
        twin = by_name.get(layer.name)
        if twin is None or twin.class_name != layer.class_name or paired.get(layer.name) is twin:
            continue
        if not all(keras_named(file_layer) for file_layer in weighted if file_layer.class_name == layer.class_name):
            continue
        places = [file_layer.name for file_layer in weighted if file_layer.class_name == layer.class_name]
        mine = [model_layer.name for model_layer in model_layers if model_layer.class_name == layer.class_name]
        names = ", ".join(file_layer.name for file_layer in weighted if keras_named(file_layer))
        return (f"the file's layers have the names Keras gave them itself ({names}), and this model's names overlap "
                f"them shifted: the file's '{layer.name}' is its {_ordinal(places.index(layer.name) + 1)} "
                f"{layer.class_name} layer, this model's '{layer.name}' its {_ordinal(mine.index(layer.name) + 1)}, "
                "so by name the wrong layers would load; load them by place with init.rename, as shown below")
    return None


def explain(spec_file: SpecFile, index: int, built: BuiltModel, rounds: Rounds,
            source: InitSource | None) -> tuple[tuple[Path, str] | None, list[str]]:
    """For stage ``index`` whose layers do not load from its model file: the one problem that replaces
    the per-layer ones when the names collide (else None), and the notes to show under the problems (the
    file's layers, the YAML to paste).  Nothing for a stage that does not start from a model file, or
    that renames already."""
    stage = spec_file.spec.stages[index]
    init = stage.init
    if init is None or init.model is None or init.rename or source is None or not source.layers:
        return None, []
    model_layers = [
        ModelLayer(info.name, info.class_name, [tuple(int(d) for d in weight.shape) for weight in info.layer.weights])
        for info in built.layers if info.has_weights
    ]
    fresh = [name for name, decision in rounds.first.items() if decision.init == "reinit"]
    notes = [f"the layers of {init.model} (stages[{index}].init.model), with their weight shapes:",
             *_table(source.layers)]
    found = pair_by_place(source.layers, model_layers, fresh)
    if found is None or not (found.rename or found.reinit):
        return None, notes
    notes += _proposal(spec_file, index, found)
    problem = (("stages", index, "init"), found.collision) if found.collision else None
    return problem, notes


def _table(layers: Sequence[SourceLayer]) -> list[str]:
    rows = [(layer.where, layer.class_name or "?", _shapes(layer.shapes) or "no weights") for layer in layers]
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    return [f"  {where:<{widths[0]}}  {kind:<{widths[1]}}  {shapes}" for where, kind, shapes in rows]


def _proposal(spec_file: SpecFile, index: int, found: ByPlace) -> list[str]:
    stage = spec_file.spec.stages[index]
    assert stage.init is not None and stage.init.model is not None
    lines = [f"to load them by class and place (the file's n-th GRU as this model's n-th GRU, and so on), "
             f"paste into stage '{stage.name}' (stages[{index}]):",
             "  init:", f"    model: {_flow(stage.init.model)}"]
    if found.rename:
        lines.append(f"    rename: {_flow(found.rename)}")
    reinit = list(found.reinit)
    if reinit and stage.policy.plugin in REINIT_POLICIES:
        params = _written_params(spec_file, index) if stage.policy.plugin == "layers" else {}
        written = params.get("reinit")
        earlier: list = written if isinstance(written, list) else []
        params = {**params, "reinit": [*earlier, *(name for name in reinit if name not in earlier)]}
        if isinstance(params.get("freeze"), list):  # a layer started fresh is not kept frozen at random values
            params["freeze"] = [name for name in params["freeze"] if name not in reinit]
        lines += ["  policy:", "    plugin: layers", f"    params: {_flow(params)}"]
    elif reinit:
        lines.append(f"  # and start {', '.join(reinit)} fresh: policy 'layers' with reinit: [...], or "
                     "'replace_head' for heads")
    lines += [f"'{name}' starts fresh: {why}" for name, why in found.reinit.items()]
    return lines


def _written_params(spec_file: SpecFile, index: int) -> dict:
    """The stage's policy params as the spec writes them (so the proposal keeps its freeze and train)."""
    try:
        params = spec_file.document.data["stages"][index]["policy"]["params"]
    except (KeyError, IndexError, TypeError):
        return {}
    return dict(params) if isinstance(params, Mapping) else {}


def _flow(value) -> str:
    """``value`` as one line of YAML (flow style), as a user would paste it."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=2**31, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")


def _shapes(shapes: Shapes) -> str:
    return ", ".join(str(tuple(shape)) for shape in shapes)


def _count(count: int, class_name: str) -> str:
    return f"{'no' if count == 0 else count} {class_name} layer{'' if count == 1 else 's'}"


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
