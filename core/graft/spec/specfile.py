"""Load a spec file: YAML -> attrs classes, plugin names and params resolved, all problems at once.

Everything here runs without TensorFlow; it is all ``graft validate`` does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import attrs

from graft.base.files import NotRegularFile, open_regular
from graft.base.problems import Path, Problems, SpecError, SpecProblem, did_you_mean, format_path, listing
from graft.plugins.layers import INPUT_NAME
from graft.plugins.registry import PluginError, Registry
from graft.spec.callbacks import monitored
from graft.spec.convert import make_converter, structure, structure_attrs
from graft.spec.initspec import check_init
from graft.spec.overrides import Override, apply_overrides
from graft.spec.records import CLASSIFICATION_LOSSES, DataRef, ExtractorRef, HeadSpec, PolicyRef, Spec, Stage
from graft.spec.validators import is_name, loading_model_input, loading_spec_in
from graft.spec.yamlfile import YamlDocument, YamlLimitError, YamlProblem, load_yaml

DICT_ANCHOR = "<spec dict>"  # the file name of a spec given as a dict (in base_dir, which anchors its paths)
MAX_BYTES = 1024 * 1024  # a spec is a few kilobytes; anything near this is not a spec

# spec class -> (plugin kind, the key naming the plugin)
PLUGIN_REFERENCES = {
    ExtractorRef: ("extractor", "plugin"),
    HeadSpec: ("head", "plugin"),
    PolicyRef: ("policy", "plugin"),
    DataRef: ("data source", "source"),
}


@attrs.frozen
class SpecFile:
    """A loaded spec with the file it came from, the line of every YAML path and the ``--set`` overrides applied."""

    path: str
    spec: Spec
    document: YamlDocument  # as the spec was checked: with the overrides applied
    overrides: tuple[Override, ...] = ()

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def resolve(self, relative: str) -> str:
        """A path from the spec, relative to the spec's folder."""
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(relative)))

    def error(self, items: Iterable[tuple[Path, str]], notes: Sequence[str] = ()) -> SpecError:
        """A ``SpecError`` whose lines are ``path (line N): message``, then ``notes``."""
        return render(self.path, self.document, items, notes)


def render(source: str, document: YamlDocument, items: Iterable[tuple[Path, str]],
           notes: Sequence[str] = ()) -> SpecError:
    lines = []
    for path, message in items:
        origin = document.where(path)
        where = f"{format_path(path)} ({origin})" if origin else format_path(path)
        lines.append(one_line(f"{where}: {message}"))
    return SpecError(source, lines, [one_line(note) for note in notes])


CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), *range(0x7F, 0xA0)]} | {
    0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"
}


def one_line(text: str) -> str:
    """``text`` with control characters escaped (a name holding a newline), so a problem stays one line."""
    return text.translate(CONTROL)


def spec_converter(registry: Registry):
    """The strict converter, with plugin references resolved through ``registry``."""
    converter = make_converter()
    for cls, (kind, key) in PLUGIN_REFERENCES.items():
        converter.register_structure_hook(cls, _plugin_hook(converter, registry, kind, key))
    return converter


def _plugin_hook(converter, registry: Registry, kind: str, key: str):
    def structure_reference(data, cls):
        problems, reference = Problems(), None
        with problems.collect():
            reference = structure_attrs(converter, data, cls)
        default = attrs.fields_dict(cls)[key].default  # an absent name is the default plugin's: its params count
        name = data.get(key, default if isinstance(default, str) else None) if isinstance(data, Mapping) else None
        params = None
        if isinstance(name, str):  # params are checked even when the reference has other problems
            with problems.collect():
                params = _structure_params(converter, registry, kind, key, name, data.get("params"))
        problems.raise_all()
        return attrs.evolve(reference, params=params)

    return structure_reference


def _structure_params(converter, registry: Registry, kind: str, key: str, name: str, raw):
    try:
        params_class = registry.params_class(kind, name)
    except PluginError as exc:
        raise SpecProblem((key,), str(exc)) from None
    raw = raw if raw is not None else {}
    if params_class is None:
        if raw:
            raise SpecProblem(("params",), f"{kind} plugin '{name}' takes no params")
        return None
    return structure(converter, raw, params_class, ("params",))


def load_spec(path: str, registry: Registry, overrides: Iterable[Override] = ()) -> SpecFile:
    """Read, structure and check the spec at ``path`` (with ``overrides`` applied, ``graft.spec.overrides``);
    raise ``SpecError`` listing every problem."""
    return parse_spec(read_spec_text(path), path, registry, overrides)


def read_spec_text(path: str) -> str:
    """The text of the spec file at ``path``: a regular file of UTF-8 text, at most ``MAX_BYTES``.

    Anything else (a folder, a FIFO, a device, a binary file) is refused with a
    ``SpecError``; a FIFO is never opened, so this never blocks.
    """
    if "\0" in path:
        raise SpecError(path, ["cannot read the spec: its path holds a NUL byte; give the path of a YAML file"])
    try:
        with open_regular(path) as handle:
            data = handle.read(MAX_BYTES + 1)
    except NotRegularFile as exc:
        raise SpecError(path, [f"cannot read the spec: it is {exc.kind}, not a file; give the path of a YAML file"]) \
            from None
    except OSError as exc:
        raise SpecError(path, [f"cannot read the spec: {exc.strerror or exc}"]) from None
    if len(data) > MAX_BYTES:
        raise SpecError(path, [f"the spec is larger than {MAX_BYTES // 1024 // 1024} MiB, the limit for a spec file; "
                               "is it the right file?"])
    return _decode(data, path)


def _decode(data: bytes, path: str) -> str:
    if b"\0" in data:
        offset = data.index(b"\0")
        zip_hint = " (a zip archive, such as a .keras model?)" if data.startswith(b"PK\x03\x04") else ""
        raise SpecError(
            path, [f"the file looks binary{zip_hint}: a NUL byte at byte offset {offset}; a spec is YAML text"]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            path,
            [f"the spec is not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset {exc.start} cannot be decoded; "
             "save the file as UTF-8"],
        ) from None


def parse_spec(text: str, path: str, registry: Registry, overrides: Iterable[Override] = ()) -> SpecFile:
    """Like ``load_spec`` for YAML text; ``path`` names it and anchors relative paths."""
    import yaml

    try:
        document = load_yaml(text, path)
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow; no mark, a position
        line, column = text.count("\n", 0, exc.position) + 1, exc.position - text.rfind("\n", 0, exc.position)
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise SpecError(path, [f"line {line}, column {column}: not valid YAML: the character {character!r} "
                               f"(#x{ord(character):04x}) is not allowed in YAML text; remove it"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = "" if isinstance(exc, YamlLimitError) else "not valid YAML: "
        raise SpecError(path, [one_line(f"{where}{what}{getattr(exc, 'problem', None) or exc}")]) from None
    except YamlProblem as problem:
        raise render(path, YamlDocument(None, problem.lines), problem.items) from None
    if document.unreadable or document.duplicates:
        raise render(path, document, document.unreadable + document.duplicates)
    overrides = tuple(overrides)
    if overrides:
        document = apply_overrides(document, overrides, path)
    try:
        folder, input_shape = os.path.dirname(os.path.abspath(path)), _raw_input_shape(document.data)
        with loading_spec_in(folder), loading_model_input(input_shape):
            spec = structure(spec_converter(registry), document.data, Spec)
    except SpecProblem as problem:
        raise render(path, document, problem.items) from None
    spec_file = SpecFile(path, spec, document, overrides)
    items = check_spec(spec_file)
    if items:
        raise spec_file.error(items)
    return spec_file


def _raw_input_shape(data) -> object:
    """``model.input_shape`` as written, for params that depend on it (``graft.spec.validators.model_input_shape``)."""
    model = data.get("model") if isinstance(data, Mapping) else None
    return model.get("input_shape") if isinstance(model, Mapping) else None


def check_spec(spec_file: SpecFile) -> list[tuple[Path, str]]:
    """Checks across fields: head and stage names, stage references, files, monitored metrics, augmentation."""
    spec = spec_file.spec
    items: list[tuple[Path, str]] = []
    items += _check_head_names(spec.model.heads, ("model", "heads"))
    items += _check_class_weights(spec.model.heads, ("model", "heads"))
    seen: dict[str, int] = {}
    folders: dict[str, int] = {}  # stage folders, as a case-insensitive file system sees them
    for index, stage in enumerate(spec.stages):
        at: Path = ("stages", index)
        if stage.name in seen:
            items.append(((*at, "name"), f"stage name '{stage.name}' is used by stages[{seen[stage.name]}] too"))
        elif stage.name.lower() in folders:
            other = folders[stage.name.lower()]
            items.append(((*at, "name"), f"stage name '{stage.name}' differs from stages[{other}] "
                          f"'{spec.stages[other].name}' only in case; their folders would clash on macOS and Windows"))
        if stage.heads is not None:
            items += _check_head_names(stage.heads, (*at, "heads"))
            items += _check_class_weights(stage.heads, (*at, "heads"))
        items += check_init(spec_file.resolve, stage, list(seen), at)
        items += _check_monitors(spec, stage, at)
        items += _check_augment(spec, stage, at)
        if stage.optimizer.schedule is not None and stage.callbacks.reduce_lr is not None:
            items.append(((*at, "callbacks", "reduce_lr"), "the optimizer has a schedule, which sets the rate "
                          "every step; remove reduce_lr or optimizer.schedule"))
        seen.setdefault(stage.name, index)
        folders.setdefault(stage.name.lower(), index)
    return items


def _check_head_names(heads: dict, at: Path) -> list[tuple[Path, str]]:
    items = []
    for name in heads:
        if not is_name(name):
            items.append(
                ((*at, name), f"head name {name!r} is not valid: use letters, digits and _ (it names a Keras layer)")
            )
        elif name == INPUT_NAME:
            items.append(
                (
                    (*at, name),
                    f"head name '{name}' is reserved: the model's input layer is named {INPUT_NAME}; choose another",
                )
            )
    return items


def head_classes(head: HeadSpec) -> int | None:
    """How many classes a classification head has, as far as its spec tells without building it: 2 for a
    binary cross-entropy, else the ``units`` of its params (the ``dense`` head's); None if unknown."""
    if head.loss == "binary_crossentropy":
        return 2
    units = getattr(head.params, "units", None)
    return units if isinstance(units, int) and not isinstance(units, bool) and units > 0 else None


def _check_class_weights(heads: dict[str, HeadSpec], at: Path) -> list[tuple[Path, str]]:
    """``class_weight`` only on classification heads, and only for class ids the head has."""
    items: list[tuple[Path, str]] = []
    for name, head in heads.items():
        if head.class_weight is None:
            continue
        where: Path = (*at, name, "class_weight")
        if head.loss not in CLASSIFICATION_LOSSES:
            items.append((where, f"class_weight weighs the classes of a classification head, but head '{name}' "
                                 f"is trained with {head.loss}; remove class_weight, or use one of: "
                                 f"{listing(CLASSIFICATION_LOSSES)}"))
            continue
        classes = head_classes(head)
        if classes is None or not isinstance(head.class_weight, dict):
            continue
        for class_id in head.class_weight:
            if class_id >= classes:
                items.append(((*where, class_id), f"class id {class_id} is beyond head '{name}', which has {classes} "
                                                  f"classes (ids 0 to {classes - 1}); remove it or fix the id"))
    return items


def metric_names(heads: dict[str, HeadSpec]) -> list[str]:
    """Every name Keras logs for these heads, with and without ``val_``."""
    names = ["loss"]
    if len(heads) == 1:  # one output: Keras logs metrics without a head prefix
        (head_spec,) = heads.values()
        names += list(head_spec.metrics)
    else:
        for head, head_spec in heads.items():
            names += [f"{head}_loss", *(f"{head}_{metric}" for metric in head_spec.metrics)]
    return names + [f"val_{name}" for name in names]


def _check_monitors(spec: Spec, stage: Stage, at: Path) -> list[tuple[Path, str]]:
    names = metric_names(spec.heads_of(stage))
    items = []
    for key, callback in monitored(stage.callbacks):
        if callback.monitor not in names:
            items.append(
                (
                    (*at, "callbacks", key, "monitor"),
                    f"'{callback.monitor}' is not logged by this stage; choose one of: "
                    f"{listing(names, 20)}{did_you_mean(callback.monitor, names)}",
                )
            )
    return items


def _check_augment(spec: Spec, stage: Stage, at: Path) -> list[tuple[Path, str]]:
    """Image augmentations (all but noise) need image inputs: ``model.input_shape`` [height, width, channels]."""
    shape = list(spec.model.input_shape)
    if len(shape) == 3:
        return []
    return [
        (
            (*at, "data", "augment", index, entry.name),
            f"'{entry.name}' works on images, but model.input_shape is {shape}, not [height, width, channels]; "
            "remove this entry (noise works on any input)",
        )
        for index, entry in enumerate(stage.data.augment)
        if entry.images_only
    ]
