"""``graft new-plugin``: a complete plugin distribution, written from the templates beside this module.

``graft-NAME/`` holds ``pyproject.toml`` (the ``graft`` entry point ``NAME``), the module
``graft_NAME/__init__.py`` (an attrs params class and the hook of its kind), its tests
``tests/test_NAME.py`` (which call ``graft.testing``'s conformance check), a README and,
if chosen, the MIT licence. It pip-installs and passes its own tests as written.
No TensorFlow here.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.resources
import os
import re
import shutil
import string
import textwrap

import attrs

from graft.base.problems import GraftError

# --kind -> (the hook, how a spec names the plugin, what the template plugin does)
KINDS = {
    "extractor": (
        "build_extractor", "extractor: {plugin: NAME}", "Dense layers on the flattened input as the extractor."
    ),
    "head": (
        "build_head", "heads: {HEAD: {plugin: NAME}}", "hidden Dense layers, dropout and a Dense output as a head."
    ),
    "policy": (
        "transfer_policy", "policy: {plugin: NAME}", "a transfer policy that freezes the extractor layers it lists."
    ),
    "data": ("load_data", "data: {source: NAME}", "a data source reading a CSV file of numbers."),
}
LICENSES = ("none", "MIT")
NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_NAME = 40


class ScaffoldError(GraftError):
    """A plugin that cannot be written: a bad name, a taken name, an existing folder."""


@attrs.frozen
class NewPlugin:
    """What ``write_plugin`` wrote: the distribution's folder and its files (relative paths)."""

    name: str
    kind: str
    folder: str
    files: tuple[str, ...]


def check_name(name: str) -> None:
    """``name`` must make a module ``graft_NAME`` and a YAML name: lowercase letters, digits, single ``_``."""
    if not NAME.fullmatch(name) or len(name) > MAX_NAME:
        suggestion = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        suggestion = suggestion if NAME.fullmatch(suggestion) and len(suggestion) <= MAX_NAME else "my_plugin"
        raise ScaffoldError(
            f"plugin name {name!r} cannot be used: use lowercase letters, digits and single underscores, starting "
            f"with a letter, at most {MAX_NAME} characters (it names the module graft_NAME and the spec's "
            f"plugin: NAME), e.g. {suggestion!r}"
        )
    claimed = [entry for entry in importlib.metadata.entry_points(group="graft") if entry.name == name]
    if claimed:
        holder = getattr(claimed[0], "dist", None)
        owner = f"{holder.metadata['Name']} {holder.version}" if holder is not None else claimed[0].value
        raise ScaffoldError(
            f"plugin name '{name}' is taken by {owner}, installed here: "
            "two plugins of one name conflict; choose another"
        )


def distribution_name(name: str) -> str:
    return "graft-" + name.replace("_", "-")


def plugin_files(name: str, kind: str, license: str = "none", author: str | None = None) -> dict[str, str]:
    """Relative path -> text of every file of the plugin ``name`` of ``kind`` (``--kind``)."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown plugin kind '{kind}': choose one of {', '.join(KINDS)}")
    if license not in LICENSES:
        raise ScaffoldError(f"unknown licence '{license}': choose one of {', '.join(LICENSES)}")
    hook, spec_use, description = KINDS[kind]
    module, distribution = f"graft_{name}", distribution_name(name)
    author = author or f"the {distribution} authors"
    usage = _template(f"{kind}/usage.yaml").substitute(name=name).rstrip("\n")
    values = {
        "name": name,
        "module": module,
        "distribution": distribution,
        "description": description,
        "hook": hook,
        "spec_use": spec_use.replace("NAME", name),
        "params_class": "".join(part.capitalize() for part in name.split("_")) + "Params",
        "usage": usage,
        "usage_indented": textwrap.indent(usage, "    "),
        "license_lines": 'license = "MIT"\nlicense-files = ["LICENSE"]' if license == "MIT"
        else "# No licence chosen yet (README.md, Licence).",
        "license_note": "MIT: see LICENSE." if license == "MIT" else (
            "None chosen yet: without a licence nobody may reuse this code. Add a LICENSE file "
            "and `license = \"...\"` (an SPDX expression) to pyproject.toml before you publish, "
            "or write the plugin again with `graft new-plugin ... --license MIT`."
        ),
        "author": author,
        "year": str(datetime.date.today().year),
    }
    files = {
        "pyproject.toml": _template("pyproject.toml").substitute(values),
        "README.md": _template("README.md").substitute(values),
        f"{module}/__init__.py": _template(f"{kind}/module.py").substitute(values),
        f"tests/test_{name}.py": _template(f"{kind}/test.py").substitute(values),
    }
    if license == "MIT":
        files["LICENSE"] = _template("LICENSE").substitute(values)
    return files


def _template(name: str) -> string.Template:
    resource = importlib.resources.files(__name__).joinpath("templates", *f"{name}.tmpl".split("/"))
    return string.Template(resource.read_text(encoding="utf-8"))


def write_plugin(
    name: str, kind: str, output: str = ".", license: str = "none", author: str | None = None
) -> NewPlugin:
    """Write ``graft-NAME/`` into ``output`` (made if missing); an existing ``graft-NAME`` is never touched."""
    check_name(name)
    files = plugin_files(name, kind, license, author)
    folder = os.path.join(output, distribution_name(name))
    try:
        os.makedirs(output, exist_ok=True)
        os.mkdir(folder)  # fails if anything is there: nothing is overwritten
    except FileExistsError:
        what = "a folder" if os.path.isdir(folder) else "a file"
        if not os.path.isdir(output):
            raise ScaffoldError(f"--output {output} is a file, not a folder; nothing was written") from None
        raise ScaffoldError(
            f"{folder} already exists ({what}); nothing was written: remove it or choose another --output"
        ) from None
    except OSError as exc:
        raise ScaffoldError(
            f"cannot write into --output {output}: {exc.strerror or exc}; nothing was written"
        ) from None
    try:
        for relative, text in files.items():
            path = os.path.join(folder, *relative.split("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "x", encoding="utf-8") as handle:
                handle.write(text)
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)  # only what this call created
        if isinstance(exc, OSError):
            raise ScaffoldError(f"cannot write {folder}: {exc.strerror or exc}; nothing was left behind") from None
        raise
    return NewPlugin(name, kind, folder, tuple(files))
