"""MkDocs hook: reference tables generated from keras-graft itself at build time, so they cannot drift.

A page asks for a table with an HTML comment that the hook replaces:

``<!-- graft:cli -->``
    every command, sub-command and flag of ``graft``, read from its argparse parser;
``<!-- graft:spec ... -->``
    every key of the YAML spec, read from the JSON Schema ``graft schema`` prints;
``<!-- graft:params NAME ... -->``
    the params of the plugin ``NAME`` (a core built-in or a plugin in ``plugins/``), from the same schema.

The lines inside ``graft:spec`` and ``graft:params`` say in words what each key does,
``key: text`` one a line (``stages[].epochs: ...``).  The build fails when a key of the
schema has no words, when words name a key the schema does not have, and when a plugin
the schema knows has no table on any page: a new key, a renamed one or a new plugin must
be documented before the site builds.

Nothing here imports TensorFlow: the parser and the schema builder are TensorFlow-free.
The core's built-ins come from the installed keras-graft (its entry points); the plugins
of this repository are imported from their source folders, whatever else is installed.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!--\s*graft:(?P<kind>cli|spec|params)(?P<arg>[ \t]+[\w-]+)?[ \t]*\n?(?P<body>.*?)-->", re.S)
JSON = dict[str, Any]
# as graft.spec.schema_keywords writes them: a name, and the bounds that say "a finite number"
NAME_PATTERN = "^[A-Za-z_][A-Za-z0-9_]*$(?!\\n)"
LARGEST_FLOAT = sys.float_info.max
INT64 = (-(2**63), 2**63 - 1)


# -- what the hook reads from keras-graft ------------------------------------------------------


def _registry():
    """The core's built-ins (installed entry points) and this repository's plugins (from source)."""
    import tomllib
    from importlib import import_module

    from graft.plugins.registry import Registry

    registry = Registry.discover(enabled=set())  # third-party plugins off: the build does not depend on them
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        sys.path.insert(0, str(pyproject.parent))
        for name, target in project.get("entry-points", {}).get("graft", {}).items():
            module, _, attribute = target.partition(":")
            plugin = import_module(module)
            registry.register(getattr(plugin, attribute) if attribute else plugin, name,
                              project["name"], project["version"])
    return registry


class Reference:
    """The parser and the schema, read once per build."""

    def __init__(self) -> None:
        from graft.commands.cli import _parser
        from graft.spec.schema import spec_schema

        os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal: the same width every build
        self.parser: argparse.ArgumentParser = _parser()
        self.schema: JSON = spec_schema(_registry())
        self.defs: JSON = self.schema["$defs"]
        self.plugins: dict[str, tuple[str, JSON]] = self._plugins()
        self.documented: set[str] = set()

    def resolve(self, schema: JSON) -> JSON:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def _plugins(self) -> dict[str, tuple[str, JSON]]:
        """Plugin name -> (its description, the schema of its params) from the if/then branches."""
        found = {}
        for definition in self.defs.values():
            for branch in definition.get("allOf", ()):
                condition = branch["if"]["properties"]
                key = next(iter(condition))
                if key not in ("plugin", "source"):
                    continue  # the optimizer's options, chosen by name
                then = branch["then"]
                found[condition[key]["const"]] = (then.get("description", ""), then.get("properties", {}).get("params"))
        return found


# -- words for schema fragments ------------------------------------------------------------------


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return repr(value)


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "`" + text.replace("\t", "\\t").replace("|", "\\|") + "`" if text != "" else "`''`"


class Words:
    """Type, bounds and default of a schema fragment, in words, with links to the sections below."""

    def __init__(self, reference: Reference, anchors: dict[str, str]) -> None:
        self.reference = reference
        self.anchors = anchors  # $defs name -> the anchor of its section on this page

    def type(self, schema: JSON) -> str:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            anchor = self.anchors.get(name)
            return f"[mapping](#{anchor})" if anchor else "mapping (below)"
        if "const" in schema:
            return _code(schema["const"])
        if "enum" in schema and len(schema["enum"]) == 1:
            return _code(schema["enum"][0])
        if "enum" in schema:
            return "one of " + ", ".join(_code(choice) for choice in schema["enum"]) if schema["enum"] else "a name"
        for key in ("anyOf", "oneOf"):
            if key in schema:
                parts = list(dict.fromkeys(self.type(part) for part in schema[key]))
                if parts[-1] == "null" and len(parts) == 2:
                    return f"{parts[0]} or null"
                return " or ".join(parts)
        kind = schema.get("type")
        if isinstance(kind, list):
            return " or ".join(kind)
        if kind == "array":
            if "prefixItems" in schema:
                return "[" + ", ".join(self.type(item) for item in schema["prefixItems"]) + "]"
            items = schema.get("items")
            return f"list of {self._plural(self.type(items))}" if items else "list"
        if kind == "object":
            values = schema.get("additionalProperties")
            if isinstance(values, dict):
                return f"mapping of names to {self._plural(self.type(values))}"
            return "mapping"
        return kind or "any value"

    @staticmethod
    def _plural(text: str) -> str:
        if text == "mapping (below)":
            return "mappings (below)"
        if text.startswith("[mapping]("):
            return "[mappings](" + text.removeprefix("[mapping](")
        return text if text.startswith(("one of", "[", "mapping", "list", "`")) else {
            "integer": "integers", "number": "numbers", "string": "strings", "boolean": "booleans",
        }.get(text, text)

    def bounds(self, schema: JSON) -> str:
        found = []
        for part in [schema, *schema.get("allOf", ()), *schema.get("anyOf", ())]:
            if part is not schema and "items" in part and isinstance(part["items"], dict) and "type" not in part:
                part = part["items"]  # bounds of each item (image_size)
            if part is not schema and "type" in part and part.get("type") not in ("integer", "number", "array"):
                continue
            for key, words in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"),
                               ("exclusiveMaximum", "<")):
                if key in part and abs(part[key]) == LARGEST_FLOAT:  # graft.spec.schema_keywords.FINITE
                    found.append("finite")
                elif key in part and part[key] in INT64:  # every integer's (graft.spec.schema): no news
                    continue
                elif key in part:
                    found.append(f"{words} {_number(part[key])}")
        items = schema.get("items")
        if isinstance(items, dict) and schema.get("type") == "array":
            inner = self.bounds(items)
            if inner:
                found.append(f"each {inner}")
        if "pattern" in schema:
            found.append("letters, digits and `_`, not starting with a digit"
                         if schema["pattern"] == NAME_PATTERN else f"matches {_code(schema['pattern'])}")
        if "maxLength" in schema:
            found.append(f"at most {_number(schema['maxLength'])} characters")
        if schema.get("minItems"):
            found.append(f"at least {_number(schema['minItems'])} item{'s' if schema['minItems'] > 1 else ''}")
        if schema.get("minProperties"):
            many = schema["minProperties"] > 1
            found.append(f"at least {_number(schema['minProperties'])} entr{'ies' if many else 'y'}")
        return ", ".join(dict.fromkeys(found))

    @staticmethod
    def default(schema: JSON, required: bool) -> str:
        if required:
            return "**required**"
        if "default" not in schema:
            return "—"
        return _code(schema["default"]) if schema["default"] is not None else "null (unset)"


# -- descriptions given on the page -------------------------------------------------------------


def _descriptions(body: str, where: str) -> dict[str, str]:
    """``key: words`` lines (a line that does not start a key continues the one before)."""
    described: dict[str, str] = {}
    last = None
    for line in body.splitlines():
        if not line.strip():
            continue
        match = re.match(r"^([\w.\[\]<>]+):\s+(.*)$", line.strip())
        if match and not line.startswith((" ", "\t")):
            last = match.group(1)
            if last in described:
                raise PluginError(f"{where}: '{last}' is described twice")
            described[last] = match.group(2).strip()
        elif last is not None:
            described[last] += " " + line.strip()
        else:
            raise PluginError(f"{where}: expected 'key: words', got {line.strip()!r}")
    return described


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _check_described(keys: list[str], described: dict[str, str], where: str) -> None:
    missing = [key for key in keys if key not in described]
    stale = [key for key in described if key not in keys]
    problems = []
    if missing:
        problems.append("no words for " + ", ".join(missing) + " (add 'key: what it does' lines)")
    if stale:
        problems.append("words for keys keras-graft does not have: " + ", ".join(stale))
    if problems:
        raise PluginError(f"{where}: " + "; ".join(problems))


# -- the spec -------------------------------------------------------------------------------------


class SpecPage:
    """Sections of the spec, top level first, each a table of its keys."""

    def __init__(self, reference: Reference) -> None:
        self.reference = reference
        self.sections: list[tuple[str, str, JSON]] = []  # (YAML path, $defs name or '', object schema)
        self.anchors: dict[str, str] = {}
        self._walk("", "", reference.schema)

    @staticmethod
    def anchor(path: str) -> str:
        return "spec-" + (re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "top")

    def _walk(self, path: str, name: str, schema: JSON) -> None:
        if name in self.anchors:
            return
        self.anchors[name] = self.anchor(path)
        self.sections.append((path, name, schema))
        for key, field in schema.get("properties", {}).items():
            if key == "params":
                continue  # a plugin's own params: the plugins' reference pages
            for child_name, child_path in self._children(field, f"{path}.{key}" if path else key):
                self._walk(child_path, child_name, self.reference.defs[child_name])

    def _children(self, field: JSON, path: str):
        """(the $defs name, its YAML path) of every object a field holds."""
        if "$ref" in field:
            name = field["$ref"].rsplit("/", 1)[1]
            if self.reference.defs[name].get("properties"):
                yield name, path
            return
        for key in ("anyOf", "oneOf"):
            for part in field.get(key, ()):
                if "$ref" in part and key == "oneOf":
                    continue  # the augment entries: one table of their own
                yield from self._children(part, path)
        if field.get("type") == "array" and isinstance(field.get("items"), dict):
            yield from self._children(field["items"], path + "[]")
        if isinstance(field.get("additionalProperties"), dict):
            yield from self._children(field["additionalProperties"], path + ".<name>")

    def render(self, described: dict[str, str], where: str) -> str:
        words = Words(self.reference, self.anchors)
        keys, out = [], []
        for path, _name, schema in self.sections:
            title = f"`{path}`" if path else "The top level"
            out.append(f"### {title} {{#{self.anchor(path)}}}\n")
            if schema.get("description"):
                out.append(_rst(schema["description"]) + "\n")
            out.append("| key | what it does | type | default | bounds |\n|---|---|---|---|---|")
            required = set(schema.get("required", ()))
            for key, field in schema.get("properties", {}).items():
                full = f"{path}.{key}" if path else key
                keys.append(full)
                what = described.get(full, "")
                kind = words.type(field)
                if key == "params":
                    kind = "mapping: [the plugin's params](plugins.md)"
                out.append(f"| `{key}` | {_cell(what)} | {_cell(kind)} | {words.default(field, key in required)} "
                           f"| {_cell(words.bounds(field))} |")
            out.append("")
            augment = [part for field in schema.get("properties", {}).values() for part in
                       (field.get("items", {}) or {}).get("oneOf", ()) if isinstance(field.get("items"), dict)]
            if augment:
                out.append(self._augment(path, augment, words, described, keys))
            if path.endswith("optimizer"):
                out.append(self._optimizer_options(schema, words))
        _check_described(keys, described, where)
        return "\n".join(out)

    def _augment(self, path: str, entries: list[JSON], words: Words, described, keys) -> str:
        out = [f"Each entry of `{path}.augment` is a mapping with one key:\n",
               "| entry | what it does | value | bounds |\n|---|---|---|---|"]
        for entry in entries:
            schema = self.reference.resolve(entry)
            (key, field), = schema["properties"].items()
            full = f"{path}.augment[].{key}"
            keys.append(full)
            out.append(f"| `{key}` | {_cell(described.get(full) or _rst(schema.get('description', '')))} "
                       f"| {_cell(words.type(field))} | {_cell(words.bounds(field))} |")
        return "\n".join(out) + "\n"

    def _optimizer_options(self, schema: JSON, words: Words) -> str:
        out = ["`options` of each optimizer (keyword arguments of its Keras class, checked by `graft validate`):\n",
               "| `name` | Keras class | `options` |\n|---|---|---|"]
        for branch in schema.get("allOf", ()):
            name = branch["if"]["properties"]["name"]["const"]
            options = branch["then"]["properties"]["options"]
            keras_class = options.get("description", "").rsplit(" ", 1)[-1]
            listed = ", ".join(
                f"`{option}` ({words.type(field)}{', ' + words.bounds(field) if words.bounds(field) else ''})"
                for option, field in options["properties"].items()
            )
            out.append(f"| `{name}` | `{keras_class}` | {_cell(listed)} |")
        return "\n".join(out) + "\n"


def _rst(text: str) -> str:
    """Docstring text as Markdown: ``x`` is already a code span there; drop Sphinx roles."""
    return re.sub(r":\w+:`([^`]+)`", r"`\1`", " ".join(text.split()))


def _params(reference: Reference, name: str, described: dict[str, str], where: str) -> str:
    if name not in reference.plugins:
        raise PluginError(f"{where}: no plugin '{name}'; plugins: {', '.join(sorted(reference.plugins))}")
    reference.documented.add(name)
    description, params = reference.plugins[name]
    words = Words(reference, {})
    schema = None
    if params is not None:
        parts = [params] if "$ref" in params else [part for part in params.get("anyOf", ()) if "$ref" in part]
        schema = reference.resolve(parts[0]) if parts else None
    origin = re.search(r"\(([^()]*)\)$", description)
    lead = f"Plugin `{name}`" + (f", from {origin.group(1)}" if origin else "") + "."
    if schema is None:
        _check_described([], described, where)
        return f"{lead} It takes no params (leave `params` out, or give `{{}}`).\n"
    lead += " `params` is required." if schema.get("required") else " `params` may be left out: all keys have defaults."
    keys: list[str] = []
    rows = [lead, ""]
    pending = [("", schema)]  # (the path of a record, its schema): params first, then the records in its lists
    while pending:
        path, record = pending.pop(0)
        if path:
            rows.append(f"Each entry of `{path.removesuffix('[].')}`:\n")
        rows += ["| param | what it does | type | default | bounds |", "|---|---|---|---|---|"]
        required = set(record.get("required", ()))
        for key, field in record.get("properties", {}).items():
            keys.append(path + key)
            rows.append(f"| `{key}` | {_cell(described.get(path + key, ''))} | {_cell(words.type(field))} "
                        f"| {words.default(field, key in required)} | {_cell(words.bounds(field))} |")
            items = field.get("items") if field.get("type") == "array" else None
            if isinstance(items, dict) and "$ref" in items:
                pending.append((f"{path}{key}[].", reference.resolve(items)))
        rows.append("")
    _check_described(keys, described, where)
    return "\n".join(rows)


# -- the command line -----------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name, ""), sub


UNHELPED = {"config": "the spec: a YAML file"}  # positional arguments the parser gives no help for


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        text = text % {**vars(action), "prog": prog, "default": action.default}
    return html.escape(text, quote=False)


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            flag = ", ".join(action.option_strings)
            if action.nargs != 0:
                metavar = action.metavar or (
                    "{" + ",".join(map(str, action.choices)) + "}" if action.choices else action.dest.upper())
                flag += f" {metavar}"
        else:
            flag = action.metavar or action.dest
            if action.nargs in ("+", "*"):
                flag += " ..."
        words = _help(action, parser.prog) or UNHELPED.get(action.dest, "")
        extra = []
        if action.default not in (None, False, argparse.SUPPRESS) and action.nargs != 0 and "default" not in words:
            extra.append(f"default `{action.default}`")
        if isinstance(action, argparse._AppendAction) and "repeatable" not in words:
            extra.append("repeatable")
        if extra:
            words += " (" + "; ".join(extra) + ")"
        rows.append(f"| `{flag}` | {_cell(words)} |")
    return rows


def _cli(reference: Reference) -> str:
    parser = reference.parser
    out = ["### `graft` {#cli-graft}\n", html.escape(parser.description or "", quote=False) + "\n",
           "```text\n" + parser.format_usage().removeprefix("usage: ").strip() + "\n```\n",
           "| option | what it does |\n|---|---|", *_argument_rows(parser), ""]

    def command(prefix: str, name: str, words: str, sub: argparse.ArgumentParser) -> None:
        full = f"{prefix} {name}"
        anchor = "cli-" + re.sub(r"[^a-z0-9]+", "-", full.lower()).strip("-")
        out.append(f"### `{full}` {{#{anchor}}}\n")
        if words:
            out.append(html.escape(words[0].upper() + words[1:], quote=False) + ".\n")
        out.append("```text\n" + sub.format_usage().removeprefix("usage: ").strip() + "\n```\n")
        rows = _argument_rows(sub)
        if rows:
            out.extend(["| argument | what it does |", "|---|---|", *rows, ""])
        for sub_name, sub_words, sub_sub in _subcommands(sub):
            command(full, sub_name, sub_words, sub_sub)

    for name, words, sub in _subcommands(parser):
        command("graft", name, words, sub)
    return "\n".join(out)


# -- MkDocs events ----------------------------------------------------------------------------------

_reference: Reference | None = None


def on_pre_build(config) -> None:
    global _reference
    _reference = Reference()


def on_page_markdown(markdown: str, page, config, files) -> str:
    assert _reference is not None
    where = page.file.src_uri

    def replace(match: re.Match) -> str:
        kind, arg, body = match.group("kind"), (match.group("arg") or "").strip(), match.group("body")
        if kind == "cli":
            return _cli(_reference)
        described = _descriptions(body, f"{where} (graft:{kind} {arg})".rstrip())
        if kind == "spec":
            return SpecPage(_reference).render(described, f"{where} (graft:spec)")
        return _params(_reference, arg, described, f"{where} (graft:params {arg})")

    return MARKER.sub(replace, markdown)


def on_post_build(config) -> None:
    assert _reference is not None
    undocumented = sorted(set(_reference.plugins) - _reference.documented)
    if undocumented:
        raise PluginError(
            "plugins without a params table on any page: " + ", ".join(undocumented)
            + " (add <!-- graft:params NAME --> to docs/reference/plugins.md)"
        )
