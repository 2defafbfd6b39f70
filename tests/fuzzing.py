"""Spec fuzzing: a mutation engine over ``configs/*.yaml`` and the oracle for ``graft validate`` / ``graft plan``.

Shared by ``tests/spec/test_fuzz.py`` (a small, derandomised budget in the suite) and
``benchmarks/fuzz_specs.py`` (tens of thousands of cases on demand). Standard
library, PyYAML and numpy only.

The promise under test: whatever the spec file holds, ``graft.commands.cli.main`` returns
0, or returns 1 after printing ``error: ...`` whose problem lines read
``path (line N): message``, ``path: message`` or a file-level message. Anything
else -- an exception escaping, another return code, a hang, a memory blowup, a
line that is not a problem line, a message that reads like raw Python -- is a
finding.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import resource
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
TEST_DATA = os.path.join(REPO, "tests", "fixtures")

# -- seeds ------------------------------------------------------------------


@dataclass
class Seed:
    name: str
    text: str
    data: Any


def load_seeds(names: list[str] | None = None) -> list[Seed]:
    """The specs in ``configs/`` (all, or those named, without ``.yaml``), text and parsed data."""
    seeds = []
    for entry in sorted(os.listdir(CONFIGS)):
        if not entry.endswith(".yaml"):
            continue
        name = entry[: -len(".yaml")]
        if names is not None and name not in names:
            continue
        with open(os.path.join(CONFIGS, entry), encoding="utf-8") as handle:
            text = handle.read()
        seeds.append(Seed(name, text, yaml.safe_load(text)))
    return seeds


def tiny_gru_seed() -> Seed:
    """configs/gru_transfer.yaml shrunk so that ``graft plan`` builds it in a second: GRU(4) on [12, 3]."""
    (seed,) = load_seeds(["gru_transfer"])
    data = copy.deepcopy(seed.data)
    data["model"]["input_shape"] = [12, 3]
    for layer in data["model"]["extractor"]["params"]["layers"]:
        layer["units"] = 4
    for stage in data["stages"]:
        stage["data"]["params"].update(samples=32, timesteps=12, channels=3)
        stage["epochs"] = 1
    return Seed("gru_tiny", yaml.safe_dump(data, sort_keys=False), data)


def tiny_seeds() -> list[Seed]:
    """Small versions of the GRU and Conv1D configs, for ``graft plan`` cases (no MobileNet: too slow)."""
    seeds = [tiny_gru_seed()]
    for name in ("conv1d_transfer", "gru_progressive"):
        (seed,) = load_seeds([name])
        data = copy.deepcopy(seed.data)
        data["model"]["input_shape"] = [12, 3]
        for layer in data["model"]["extractor"]["params"]["layers"]:
            for key in ("units", "filters"):
                if key in layer:
                    layer[key] = 4
        for stage in data["stages"]:
            stage["data"]["params"].update(samples=32, timesteps=12, channels=3)
            stage["epochs"] = 1
        seeds.append(Seed(name + "_tiny", yaml.safe_dump(data, sort_keys=False), data))
    return seeds


def edited(config: str, where: str, value: Any) -> str:
    """The text of ``configs/<config>.yaml`` with the value at ``where`` (``stages[1].init.stage``) replaced."""
    (seed,) = load_seeds([config])
    data = copy.deepcopy(seed.data)
    path = tuple(int(part) if part.isdigit() else part for part in re.findall(r"[^.\[\]]+", where))
    return yaml.safe_dump(_set(data, path, value), sort_keys=False, allow_unicode=True)


def prepare_workdir(folder: str) -> None:
    """Files that mutated specs may name by relative path: ``data/train.npz``, weights files."""
    os.makedirs(os.path.join(folder, "data"), exist_ok=True)
    for name in os.listdir(TEST_DATA):
        if name.endswith(".npz"):
            shutil.copy(os.path.join(TEST_DATA, name), os.path.join(folder, "data", name))
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(
        os.path.join(folder, "data", "train.npz"),
        x=rng.normal(size=(16, 12, 3)).astype("float32"),
        y_level=rng.normal(size=(16, 1)).astype("float32"),
        y_trend=rng.integers(0, 3, size=(16,)),
    )
    np.save(os.path.join(folder, "data", "single.npy"), np.zeros(3))
    with open(os.path.join(folder, "data", "garbage.npz"), "wb") as handle:
        handle.write(b"PK\x03\x04 not really a zip")
    os.makedirs(os.path.join(folder, "data", "a_folder.npz"), exist_ok=True)


# -- values -----------------------------------------------------------------

NUMBERS = [
    0, -1, 1, -7, 2**31, 2**63, -(2**63), 2**64 + 1, 10**30, -(10**30), 10**400,
    0.0, -0.0, 0.5, -0.5, 1e-320, 1e308, -1e308, float("nan"), float("inf"), float("-inf"), 1.5, 3.0,
]
STRINGS = [
    "", " ", "pretrain\n", "pretrain ", "\u202egru_1", "\u200bgru_1", "gru\x00_1", "a\x1b[31mred", "é", "日本語",
    "😀", "x" * 300, "gru_" + "9" * 400, "gru_*", "*", "?", "[", "[!a-z]*", "**", "gru_1,gru_2", "~", "~/x",
    "../../../etc/passwd", "/dev/zero", "data/train.npz", "data/garbage.npz", "data/single.npy",
    "data/a_folder.npz", "data/weights_keras3.graft.npz", "data/weights_keras2_conv1d_bn.graft.npz",
    "nonexistent.npz", "${HOME}", "%s %d {0}", "{name}", "null", "true", "1e3", "0x10", "3", "val_loss",
    "val_accuracy", "loss", "accuracy", "mse", "pretrain", "transfer", "gru_1", "gru_3", "level", "trend",
    "conv_1", "digit", "Conv_1", "block_16_project", "dense", "gru", "conv1d", "mobilenet", "synthetic",
    "npz", "sklearn_digits", "continue", "layers", "replace_head", "fine_tune_top", "progressive",
    "imagenet", "none", "v2", "v3_small", "avg", "max", "average", "softmax", "relu", "same", "valid",
    "causal", "train", "freeze", "adam", "sgd",
]
PLUGIN_NAMES = {
    "extractor": ["gru", "conv1d", "mobilenet", "dense", "nope", "GRU"],
    "head": ["dense", "gru", "continue", "Dense"],
    "policy": ["continue", "layers", "replace_head", "fine_tune_top", "progressive", "gru", "none"],
    "source": ["synthetic", "npz", "sklearn_digits", "Synthetic", "gru"],
}
KEYS = [
    "params", "plugin", "name", "units", "layers", "freeze", "train", "reinit", "default", "groups",
    "path", "targets", "inputs", "validation_split", "validation_path", "weights", "stage", "options",
    "monitor", "hidden", "dropout", "activation", "filters", "kernel_size", "strides", "padding", "alpha",
    "variant", "classes", "per_class", "size", "channels", "holdout", "head", "seed", "samples",
    "timesteps", "frequency", "noise", "bn_momentum", "pooling", "batch_norm", "train_extractor",
    "freeze_batch_norm", "min_delta", "patience", "max_rounds", "loss_weight", "metrics", "loss",
    "epochs", "batch_size", "init", "policy", "data", "heads", "callbacks", "optimizer", "model",
    "stages", "input_shape", "extractor", "clipnorm", "learning_rate", "early_stopping", "reduce_lr",
    "<<", "unknown_key", "Params", "é", "x" * 300, "a\nb", "",
]

# Hand-written YAML for values PyYAML cannot dump or that only text can hold: tags,
# aliases, alias bombs inside !!omap / !!set / !!pairs, recursion, deep nesting.
def _bomb(kind: str, levels: int, width: int) -> str:
    parts = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        parts.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * width)}]")
    if kind == "omap":
        return "!!omap [" + ", ".join("{" + p + "}" for p in parts) + "]"
    if kind == "pairs":
        return "!!pairs [" + ", ".join("{" + p + "}" for p in parts) + "]"
    if kind == "set":
        return "!!set {" + ", ".join(f"? {{{p}}}" for p in parts) + "}"
    if kind == "seq":
        return "[" + ", ".join("{" + p + "}" for p in parts) + "]"
    return "{" + ", ".join(parts) + "}"


SNIPPETS = [
    "!!python/object:os.system {}", "!!python/object/apply:os.system [echo hi]", "!!python/name:os.system ''",
    "!!python/tuple [1, 2]", "!!binary aGVsbG8=", "!!binary '!!!'", "!unknown_tag x", "!unknown {a: 1}",
    "!!str 3", "!!int '3'", "!!int 'x'", "!!float '1.5'", "!!float nan", "!!bool yes", "!!null ''",
    "!!timestamp 2001-12-14", "2001-12-14", "!!int", "!!int ''", "!!int '-'", "!!int _", "!!float", "!!float '+'",
    "!!bool ''", "!!bool maybe", "!!timestamp x", "!!timestamp ''", "!!binary", "!!null x", "!!str", "!!set {a, b}",
    "!!omap [{a: 1}, {b: 2}]", "!!pairs [{a: 1}, {a: 2}]",
    "!!omap [{a: 1}, {a: 1}]", "!!omap {a: 1}", "!!set [a]", "!!map [1]", "!!seq {a: 1}", "!!str [1]",
    "&r [*r]", "&r {a: *r}", "&r [1, [2, *r]]", "!!omap &r [{a: *r}]", "!!set &r {? *r}", "*undefined_alias",
    "{<<: {a: 1}, b: 2}", "{<<: [{a: 1}, {b: 2}]}", "{<<: 5}", "{<<: [5]}", "{? [a, b] : 1}", "{? {a: 1} : 1}",
    "{null: 1}", "{1: 1}", "{true: 1}", "{1.5: x}", "{~: ~}", "[[[[[]]]]]", "0o17", "0x1F", "1_000", "+.inf",
    "-.inf", ".nan", "1e999", "0b101", "'\\u0000'", '"\\0"', '"\\x85"', '"\\u2028"', '"\\ud800"', "'a\tb'",
    "|\n  block\n", "!!str", "''", "~", "-", "? x", "{a: 1, a: 2}", "[a, a]",
] + [_bomb(kind, 6, 9) for kind in ("omap", "pairs", "set", "seq", "map")]
KEY_SNIPPETS = [  # YAML that stands where a mapping key stood
    "!!binary aGVsbG8=", "!!python/name:os.system", "!!int 3", "!!null ''", "!!timestamp 2001-12-14", "!!float nan",
    "!!float .inf", "!!bool true", "!!str 1", "!unknown model", "&k stages", "*undefined", "!!set {a}",
    "!!omap [{a: 1}]",
    "? [a]", "2001-12-14", ".nan", "<<", "!!merge <<", "'model '", '"model\\0"', '"\\t"',
]
BIG_SNIPPETS = [_bomb(kind, 9, 9) for kind in ("omap", "pairs", "set", "seq", "map")] + [
    "[" * 5000 + "]" * 5000,
    "{a: " * 3000 + "1" + "}" * 3000,
    "!!omap [" * 2000 + "]" * 2000,
]


# -- the mutation engine ----------------------------------------------------


@dataclass
class Case:
    """One mutated spec: its text and what was done to which seed."""

    seed: str
    text: str
    steps: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.seed}: " + "; ".join(self.steps)


def _paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(data, path[:-1])[path[-1]] = value
    return data


def _fmt(path: tuple) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{str(part)[:20]!s}"
    return text.lstrip(".") or "(top)"


INJECT = "__graft_fuzz_inject_{}__"


class Mutator:
    """Random mutations of a seed spec; ``rng`` is a ``random.Random`` (or hypothesis's)."""

    def __init__(self, rng, big: bool = False):
        self.rng = rng
        self.big = big  # alias bombs and nesting deep enough to need the worker's memory guard
        self.injections: list[str] = []

    # values
    def scalar(self) -> Any:
        r = self.rng
        choice = r.randrange(6)
        if choice == 0:
            return r.choice(NUMBERS)
        if choice == 1:
            return r.choice(STRINGS)
        if choice == 2:
            return r.choice([None, True, False])
        if choice == 3:
            return r.randint(-3, 70)
        if choice == 4:
            return r.choice([0.1, 0.99, 1.0, 2.5, 1e-9])
        return r.choice(KEYS)

    def value(self, depth: int = 0) -> Any:
        r = self.rng
        choice = r.randrange(10 if depth < 2 else 6)
        if choice < 6:
            return self.scalar()
        if choice < 8:
            return [self.value(depth + 1) for _ in range(r.randrange(4))]
        return {self.key(): self.value(depth + 1) for _ in range(r.randrange(4))}

    def key(self) -> Any:
        r = self.rng
        if r.random() < 0.85:
            return r.choice(KEYS)
        return r.choice([1, 0, None, True, 1.5, -1, "x" * 300, "pretrain\n", "\u202ekey"])

    def swap_type(self, old: Any) -> Any:
        r = self.rng
        options: list[Callable[[], Any]] = [
            lambda: r.choice([0, 3, -2, 2**63, 10**30]),
            lambda: str(old) if not isinstance(old, (dict, list)) else r.choice(STRINGS),
            lambda: [old],
            lambda: {r.choice(KEYS): old},
            lambda: None,
            lambda: r.choice([True, False]),
            lambda: r.choice([0.5, float("nan"), float("inf"), -1.5]),
            lambda: [],
            lambda: {},
        ]
        return r.choice(options)()

    def inject(self, snippet: str) -> str:
        self.injections.append(snippet)
        return INJECT.format(len(self.injections) - 1)

    # data mutations: each returns (new data, description)
    def mutate_data(self, data: Any) -> tuple[Any, str]:
        r = self.rng
        paths = _paths(data)
        path = r.choice(paths)
        target = _get(data, path)
        kind = r.choice(
            [
                "delete", "delete", "add_key", "swap_type", "swap_type", "wrap_list", "wrap_dict", "unwrap",
                "number", "number", "string", "string", "rename_key", "deep", "duplicate_item", "crossover",
                "plugin", "snippet", "snippet", "replace", "empty", "semantic", "semantic", "semantic",
            ]
        )
        where = _fmt(path)
        if kind == "delete" and path:
            parent = _get(data, path[:-1])
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
            return data, f"delete {where}"
        if kind == "add_key" and isinstance(target, dict):
            key, value = self.key(), self.value()
            target[key] = value
            return data, f"add {where}.{key!r} = {value!r:.60}"
        if kind == "rename_key" and path and isinstance(_get(data, path[:-1]), dict):
            parent = _get(data, path[:-1])
            new = self.key() if r.random() < 0.7 else self.inject(r.choice(KEY_SNIPPETS))
            parent[new] = parent.pop(path[-1])
            shown = (
                self.injections[-1] if isinstance(new, str) and new.startswith("__graft_fuzz_inject_") else repr(new)
            )
            return data, f"rename {where} -> {shown:.40}"
        if kind == "wrap_list":
            return _set(data, path, [target]), f"wrap {where} in a list"
        if kind == "wrap_dict":
            key = r.choice(KEYS)
            return _set(data, path, {key: target}), f"wrap {where} in {{{key}: ...}}"
        if kind == "unwrap" and isinstance(target, (list, dict)) and target:
            inner = target[0] if isinstance(target, list) else next(iter(target.values()))
            return _set(data, path, inner), f"unwrap {where}"
        if kind == "number":
            value = r.choice(NUMBERS)
            return _set(data, path, value), f"{where} = {value!r:.40}"
        if kind == "string":
            value = r.choice(STRINGS)
            return _set(data, path, value), f"{where} = {value!r:.40}"
        if kind == "swap_type":
            value = self.swap_type(target)
            return _set(data, path, value), f"{where} = {value!r:.60} (was {type(target).__name__})"
        if kind == "deep":
            depth = r.choice([20, 60, 200, 900]) if not self.big else r.choice([200, 900, 3000, 20000])
            if depth <= 60:
                value: Any = r.choice([1, "x", None])
                for _ in range(depth):
                    value = [value] if r.random() < 0.5 else {"a": value}
                return _set(data, path, value), f"{where} = nesting {depth} deep"
            if self.big and r.random() < 0.3:  # long rather than deep: more values than any spec holds
                snippet = "[" + ", ".join(["1"] * r.choice([100_001, 200_000])) + "]"
                described = f"{where} = a plain list of {snippet.count(',') + 1} items"
                return _set(data, path, self.inject(snippet)), described
            opening, closing = r.choice([("[", "]"), ("{a: ", "}"), ("!!omap [", "]"), ("[{a: ", "}]")])
            snippet = opening * depth + "1" + closing * depth
            return _set(data, path, self.inject(snippet)), f"{where} = {opening!r} nesting {depth} deep (text)"
        if kind == "duplicate_item" and isinstance(target, list) and target:
            target.append(copy.deepcopy(r.choice(target)))
            return data, f"duplicate an item of {where}"
        if kind == "crossover":
            source = r.choice(paths)
            value = copy.deepcopy(_get(data, source))
            if path[: len(source)] == source and len(path) > len(source):
                value = copy.deepcopy(_get(data, path))  # would nest a value in itself; keep it tame
            return _set(data, path, value), f"{where} = copy of {_fmt(source)}"
        if kind == "plugin":
            return self.mutate_plugin(data)
        if kind == "snippet":
            snippet = r.choice(SNIPPETS + (BIG_SNIPPETS if self.big else []))
            return _set(data, path, self.inject(snippet)), f"{where} = {snippet[:80]}"
        if kind == "empty":
            value = r.choice([None, "", [], {}])
            return _set(data, path, value), f"{where} = {value!r}"
        if kind == "semantic":
            return self.mutate_semantic(data)
        value = self.value()
        return _set(data, path, value), f"{where} = {value!r:.60}"

    def mutate_plugin(self, data: Any) -> tuple[Any, str]:
        """Swap a plugin reference for another (real or not), keeping or dropping its params."""
        r = self.rng
        refs = []
        for path in _paths(data):
            node = _get(data, path)
            if isinstance(node, dict):
                if "plugin" in node:
                    kind = (
                        "extractor" if path[-1:] == ("extractor",) else "policy" if path[-1:] == ("policy",) else "head"
                    )
                    refs.append((path, "plugin", kind))
                if "source" in node:
                    refs.append((path, "source", "source"))
        if not refs:
            return data, "no plugin reference to swap"
        path, key, kind = r.choice(refs)
        node = _get(data, path)
        node[key] = r.choice(PLUGIN_NAMES[kind])
        if r.random() < 0.3:
            node.pop("params", None)
        return data, f"{_fmt(path)}.{key} = {node[key]!r}"

    def mutate_semantic(self, data: Any) -> tuple[Any, str]:
        """Well-typed but wrong: policy params naming layers, stage references, data files, sizes."""
        r = self.rng
        stages = data.get("stages") if isinstance(data, dict) else None
        if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
            return self.mutate_data_fallback(data)
        index = r.randrange(len(stages))
        stage = stages[index]
        names = ["gru_1", "gru_2", "gru_3", "gru_*", "level", "trend", "conv_*", "*", "nomatch", "gru_4",
                 "Conv_1", "block_1*", "digit", "trend_hidden_1", "gru_input", "", "[", "\u202egru_1", "x" * 300]
        choice = r.randrange(9)
        if choice == 0:
            plugin = r.choice(["layers", "fine_tune_top", "progressive", "replace_head", "continue"])
            params = {
                "layers": {r.choice(["freeze", "train", "reinit"]): r.sample(names, r.randint(0, 3)),
                           r.choice(["default", "freeze_batch_norm", "train"]):
                               r.choice(["train", "freeze", True, "x"])},
                "fine_tune_top": {"layers": r.choice([0, 1, 3, 100, -1, 10**30, 2.5, "3"])},
                "progressive": {r.choice(["groups", "min_delta", "patience", "max_rounds"]):
                                r.choice([[["gru_3"], ["gru_*"]], ["gru_3", "gru_3"], [], 0, -1, 10**30, 0.0,
                                          [["nomatch"]]])},
                "replace_head": {"train_extractor": r.choice([True, False, "yes", None])},
                "continue": r.choice([{}, {"x": 1}, None]),
            }[plugin]
            stage["policy"] = {"plugin": plugin, "params": params}
            return data, f"stages[{index}].policy = {stage['policy']!r:.120}"
        if choice == 1:
            other = r.choice([s.get("name") for s in stages] + ["nope", None, "", 3])
            stage["init"] = r.choice([{"stage": other}, {"weights": r.choice(STRINGS[20:32])},
                                      {"stage": other, "weights": "data/train.npz"}, {}])
            return data, f"stages[{index}].init = {stage['init']!r}"
        if choice == 2:
            stage["data"] = {"source": "npz", "params": {
                "path": r.choice(["data/train.npz", "data/garbage.npz", "data/single.npy", "data/a_folder.npz",
                                  "missing.npz", "", "/dev/null", "data"]),
                "targets": r.choice(
                    [{"level": "y_level", "trend": "y_trend"}, {"level": "nope"}, {}, {"x": "y_level"}]),
                r.choice(["inputs", "validation_split", "validation_path"]): r.choice(
                    ["x", "nope", 0.2, 1.0, -0.1, "data/train.npz", float("nan")])}}
            return data, f"stages[{index}].data = {stage['data']!r:.140}"
        if choice == 3:
            callbacks = stage.setdefault("callbacks", {}) if isinstance(stage.get("callbacks", {}), dict) else {}
            key = r.choice(["early_stopping", "reduce_lr"])
            callbacks[key] = {r.choice(["monitor", "patience", "factor", "min_lr", "min_delta"]): r.choice(
                ["val_loss", "val_level_mae", "nope", "loss", 0, -1, 0.5, 1.5, float("nan"), 10**30, None])}
            stage["callbacks"] = callbacks
            return data, f"stages[{index}].callbacks.{key} = {callbacks[key]!r}"
        if choice == 4:
            model = data.get("model")
            if isinstance(model, dict):
                model["input_shape"] = r.choice([[], [12], [12, 3, 1], [0, 3], [-1, 3], [12, 2**40], [1, 1],
                                                 [32, 32, 3], [12.0, 3], [None, 3], [10**30, 3]])
                return data, f"model.input_shape = {model['input_shape']!r}"
        if choice == 5:
            heads = r.choice([{}, {"level": {"plugin": "dense", "loss": "mse", "params": {"units": 2}}},
                              {"new": {"plugin": "dense", "loss": "sparse_categorical_crossentropy",
                                       "params": {"units": r.choice([1, 0, 5, 10**9])}}},
                              {"trend": {"plugin": "dense", "loss": "mse", "params": {"units": 3, "hidden": [0]}}},
                              {"gru_1": {"plugin": "dense", "loss": "mse", "params": {"units": 1}}}])
            stage["heads"] = heads
            return data, f"stages[{index}].heads = {heads!r}"
        if choice == 6:
            stage[r.choice(["epochs", "batch_size"])] = r.choice([0, -1, 1, 2**63, 10**30, 1.0, True, "3"])
            return data, f"stages[{index}] epochs/batch_size edge"
        if choice == 7:
            opt = {"name": r.choice(["adam", "sgd", "Adam", "lbfgs"]),
                   "learning_rate": r.choice([0.001, 0, -1, float("inf"), float("nan"), 10**30]),
                   "options": r.choice([{}, {"clipnorm": 1.0}, {"nope": 1}, {"clipnorm": "x"}, {"momentum": -5},
                                        {"learning_rate": 0.1}, {"name": "x"}, {"clipnorm": float("nan")}])}
            stage["optimizer"] = opt
            return data, f"stages[{index}].optimizer = {opt!r}"
        # layer lists of the extractor
        try:
            layers = data["model"]["extractor"]["params"]["layers"]
            layer = r.choice(layers)
            key = r.choice(["name", "units", "filters", "kernel_size", "strides", "padding", "dropout"])
            layer[key] = r.choice(["gru_1", "level", "gru_input", "trend", 0, 1, 200, 10**6, 10**30, 0.99, "same", "x"])
            return data, f"an extractor layer's {key} = {layer[key]!r}"
        except (KeyError, TypeError, IndexError, ValueError, AttributeError):
            return self.mutate_data_fallback(data)

    def mutate_data_fallback(self, data: Any) -> tuple[Any, str]:
        value = self.value()
        return value if self.rng.random() < 0.1 else data, "whole-document fallback"

    # dumping
    def dump(self, data: Any) -> str:
        r = self.rng
        try:
            text = yaml.safe_dump(
                data,
                sort_keys=False,
                allow_unicode=r.random() < 0.5,
                default_flow_style=r.choice([False, None, True]),
                width=r.choice([80, 10**6]),
            )
        except (yaml.YAMLError, RecursionError):
            text = repr(data)  # unrepresentable: send Python's repr as "YAML" instead
        for index, snippet in enumerate(self.injections):
            token = INJECT.format(index)
            # a snippet stands where a scalar stood; quoted or plain, replace the token and its quotes
            text = text.replace(f"'{token}'", snippet).replace(f'"{token}"', snippet).replace(token, snippet)
        self.injections = []
        return text

    # text mutations
    def mutate_text(self, text: str) -> tuple[str, str]:
        r = self.rng
        kind = r.choice(
            ["insert", "delete", "flip", "latin1", "truncate", "dup_line", "dup_key", "anchor", "tag_value",
             "tag_value", "tab", "bom_crlf", "doc", "swap_lines", "indent"]
        )
        data = text.encode("utf-8", "surrogatepass")
        if not data:
            return text + "x", "append x"
        pos = r.randrange(len(data) + 1)
        if kind == "insert":
            chunk = r.choice([b"\x00", b"\xff", b":", b"-", b"[", b"{", b"&", b"*", b"!", b"|", b">", b"'", b'"',
                              b"#", b"%", b"@", b"`", b"\t", b"\r", b"\n", b" ", b"? ", b"<<: ", b"\xe2\x80\xae",
                              b"\x1b", b"\x85", b"\xc2\xa0"])
            data = data[:pos] + chunk + data[pos:]
            desc = f"insert {chunk!r} at byte {pos}"
        elif kind == "delete":
            n = r.randint(1, 8)
            data = data[:pos] + data[pos + n:]
            desc = f"delete {n} bytes at {pos}"
        elif kind == "flip" and pos < len(data):
            data = data[:pos] + bytes([data[pos] ^ (1 << r.randrange(8))]) + data[pos + 1:]
            desc = f"flip a bit of byte {pos}"
        elif kind == "latin1":
            data = data[:pos] + b"\xe9" + data[pos:]
            desc = f"Latin-1 byte e9 at {pos}"
        elif kind == "truncate":
            data = data[:pos]
            desc = f"truncate at {pos}"
        elif kind in ("dup_line", "swap_lines", "indent", "dup_key", "anchor", "tag_value"):
            lines = text.split("\n")
            index = r.randrange(len(lines))
            if kind == "dup_line":
                lines.insert(index, lines[index])
                desc = f"duplicate line {index + 1}"
            elif kind == "swap_lines":
                other = r.randrange(len(lines))
                lines[index], lines[other] = lines[other], lines[index]
                desc = f"swap lines {index + 1} and {other + 1}"
            elif kind == "indent":
                shift = r.choice([-2, 2, 1, 4])
                lines[index] = (" " * shift + lines[index]) if shift > 0 else lines[index][-shift:]
                desc = f"indent line {index + 1} by {shift}"
            elif kind == "dup_key":
                match = re.match(r"^(\s*-?\s*)([A-Za-z_]+):", lines[index])
                if match:
                    indent = " " * len(match.group(1))
                    lines.insert(index + 1, f"{indent}{match.group(2)}: {r.choice(['1', 'x', '[]', '{}', '~'])}")
                desc = f"duplicate key after line {index + 1}"
            elif kind == "anchor":
                keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*-?\s*[A-Za-z_]+: \S", line)]
                if len(keyed) >= 2:
                    a, b = sorted(r.sample(keyed, 2))
                    lines[a] = re.sub(r"^(\s*-?\s*[A-Za-z_]+): ", r"\1: &fz ", lines[a], count=1)
                    lines[b] = re.sub(r"^(\s*-?\s*[A-Za-z_]+): .*$", r"\1: *fz", lines[b], count=1)
                    desc = f"anchor line {a + 1}, alias on line {b + 1}"
                else:
                    desc = "no anchor place"
            else:
                keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*-?\s*[A-Za-z_]+: \S", line)]
                snippet = r.choice(SNIPPETS + (BIG_SNIPPETS if self.big else []))
                if keyed:
                    i = r.choice(keyed)
                    lines[i] = re.sub(
                        r"^(\s*-?\s*[A-Za-z_]+): .*$", lambda m: f"{m.group(1)}: {snippet}", lines[i], count=1
                    )
                    desc = f"line {i + 1} value = {snippet[:80]}"
                else:
                    desc = "no value place"
            data = "\n".join(lines).encode("utf-8", "surrogatepass")
        elif kind == "tab":
            data = data.replace(b"  ", b"\t", 1)
            desc = "a tab for indentation"
        elif kind == "bom_crlf":
            data = r.choice([b"\xef\xbb\xbf" + data, data.replace(b"\n", b"\r\n"), data.replace(b"\n", b"\r"),
                             b"\xff\xfe" + data.decode("utf-8", "replace").encode("utf-16-le")])
            desc = "BOM / CRLF / CR / UTF-16"
        elif kind == "doc":
            data = r.choice([b"---\n" + data + b"\n---\n" + data, b"%YAML 1.1\n---\n" + data,
                             b"%YAML 9.9\n---\n" + data, b"%TAG !x! tag:x,2000:\n---\n" + data, data + b"\n...\n",
                             b"", b"~", b"[]", b"42", b"---",
                             b"'just a string'", b"!!binary aGVsbG8="])
            desc = "document-level edit"
        else:
            data = data[:pos] + b"\x00" + data[pos:]
            desc = f"NUL at {pos}"
        return data.decode("utf-8", "surrogateescape"), desc


def make_case(rng, seeds: list[Seed], big: bool = False, max_steps: int = 3) -> Case:
    """One mutated spec: 1..max_steps data mutations, sometimes followed by a text mutation."""
    mutator = Mutator(rng, big=big)
    seed = rng.choice(seeds)
    case = Case(seed.name, seed.text)
    mode = rng.random()
    if mode < 0.2:
        text, desc = mutator.mutate_text(seed.text)
        case.text, case.steps = text, [f"text: {desc}"]
        return case
    data = copy.deepcopy(seed.data)
    for _ in range(rng.randint(1, max_steps)):
        data, desc = mutator.mutate_data(data)
        case.steps.append(desc)
    text = mutator.dump(data)
    if mode > 0.85:
        text, desc = mutator.mutate_text(text)
        case.steps.append(f"text: {desc}")
    case.text = text
    return case


def make_plan_case(rng, seeds: list[Seed]) -> Case:
    """A mutation aimed past validation: well-typed values that only building the model can judge."""
    mutator = Mutator(rng)
    seed = rng.choice(seeds)
    case = Case(seed.name, seed.text)
    data = copy.deepcopy(seed.data)
    for _ in range(rng.randint(1, 2)):
        roll = rng.random()
        if roll < 0.5:
            data, desc = well_typed_edit(rng, data)
        elif roll < 0.75:
            data, desc = mutator.mutate_semantic(data)
        elif roll < 0.8:
            data, desc = mutator.mutate_plugin(data)
        else:
            leaves = [p for p in _paths(data) if p[:1] == ("model",) and not isinstance(_get(data, p), (dict, list))]
            path = rng.choice(leaves)
            old = _get(data, path)
            if isinstance(old, bool) or not isinstance(old, (int, float)):
                value = rng.choice(["gru_1", "level", "conv_1", "same", "valid", "causal", "max", "relu", "softmax",
                                    "linear", "sigmoid", "tanh", "x", True, False, None, 3])
            else:
                value = rng.choice([0, 1, 2, 11, 12, 13, 50, 200, 10**6, 10**12, 0.5, 0.0, 0.999])
            data = _set(data, path, value)
            desc = f"{_fmt(path)} = {value!r}"
        case.steps.append(desc)
    case.text = mutator.dump(data)
    return case


# -- --set overrides ---------------------------------------------------------

PATH_JUNK = [
    "", "=", ".", "..", "[", "]", "[]", "[x]", "stages[", "stages]", "stages[-1]", "stages[1.5]", "stages..epochs",
    ".seed", "seed.", "*", "**", "+*", "++seed", "+", "stages.*.*.*.*", "stages[0][0]", "seed[0]", "seed.x",
    "stages." + "9" * 40, "stages[" + "9" * 40 + "]", "stages.\u202e", "stages.\x00", "stages.a\rb",
    "model.heads.level.loss.x", "stages.pretrain", "stages.nosuchstage.epochs", " seed", "seed ", "SEED",
    "stages.*.", "stages.*[0]", "x" * 300, "stages.transfer.init.stage",
]
VALUE_JUNK = [
    "", "[", "]", "{", "}", "{a: 1", "[1, 2", "'", '"', "a: b: c", "- 1\n- 2", "&a [*a]", "*undefined",
    "!!python/name:os.system", "!!binary", "!!int x", "!!float", "!!omap [1]", "1e999", "-1e999", ".nan", ".inf",
    "0x", "0o9", "1_000", "~", "null", "yes", "no", "on", "2026-12-07", "12:30:00", "a=b", "x" * 5000, "\x00",
    "\r", "\x1b[31m", "\u202e", "\udcff",
    "[" * 3000 + "]" * 3000, "{a: " * 500 + "1" + "}" * 500, "9" * 5000, "-0", "0.0", "1e-400", "---", "...",
    "# comment", "|\n  block", ">-\n  folded", "? a\n: b",
]


@dataclass
class SetCase:
    """A seed spec and the ``--set`` arguments given with it."""

    seed: str
    text: str
    overrides: list[str]

    def describe(self) -> str:
        return f"{self.seed} with " + " ".join(f"--set {o!r:.120}" for o in self.overrides)


def _override_path(rng, data: Any) -> str:
    """A path to something in ``data``, written the ways ``--set`` accepts (and a few it does not)."""
    paths = [p for p in _paths(data) if p]
    path = list(rng.choice(paths))
    parts: list[str] = []
    for depth, part in enumerate(path):
        if isinstance(part, int):
            entry = _get(data, tuple(path[:depth]))[part]
            style = rng.randrange(5)
            if style == 0 and isinstance(entry, dict) and isinstance(entry.get("name"), str):
                parts.append(entry["name"])
            elif style == 1:
                parts.append(str(part))
            elif style == 2 and parts:
                parts[-1] += f"[{part}]"
            elif style == 3:
                parts.append(WILDCARD_PART)
            else:
                parts.append(rng.choice([str(part), str(part + rng.choice([1, 5, 10**6])), "-1", "01"]))
        else:
            parts.append(WILDCARD_PART if rng.random() < 0.1 else str(part))
    roll = rng.random()
    if roll < 0.15:  # a key the spec does not have, with or without '+'
        parts.append(rng.choice(KEYS + ["batch_size", "optimizer", "callbacks", "seed", "x"]))
    elif roll < 0.2:
        parts = parts[: rng.randrange(len(parts) + 1)]
    text = ".".join(parts)
    if rng.random() < 0.15:
        text = "+" + text
    return text


WILDCARD_PART = "*"


def _override_value(rng, mutator: Mutator) -> str:
    roll = rng.random()
    if roll < 0.45:
        value = mutator.value()
        try:
            return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9).strip()
        except yaml.YAMLError:
            return str(value)
    if roll < 0.6:
        return str(mutator.scalar())
    if roll < 0.85:
        return rng.choice(VALUE_JUNK)
    return rng.choice(SNIPPETS)


def _plausible_override(rng, data: Any) -> str:
    """``path=value`` with a value of the type already there (an int near it, a string of the spec's own)."""
    leaves = [p for p in _paths(data) if p and not isinstance(_get(data, p), (dict, list))]
    path = rng.choice(leaves)
    old = _get(data, path)
    strings = sorted({str(_get(data, p)) for p in leaves if isinstance(_get(data, p), str)})
    if isinstance(old, bool):
        value = rng.choice(["true", "false"])
    elif isinstance(old, int):
        value = str(rng.choice([1, 2, 3, old, old + 1, max(old - 1, 0), old * 2]))
    elif isinstance(old, float):
        value = repr(rng.choice([old, old / 10, old * 2, 0.5, 1e-3]))
    else:
        value = rng.choice(strings)
    parts = [WILDCARD_PART if isinstance(part, int) and path[0] == "stages" and depth == 1 and rng.random() < 0.3
             else str(part) for depth, part in enumerate(path)]
    return ".".join(parts) + "=" + value


def make_set_case(rng, seeds: list[Seed]) -> SetCase:
    """A seed spec from ``configs/`` (unchanged) and 1..4 ``--set`` arguments aimed at it, some malformed."""
    seed = rng.choice(seeds)
    mutator = Mutator(rng)
    overrides = []
    careful = rng.random() < 0.3  # every override well typed
    for _ in range(rng.randint(1, 4)):
        roll = 0.0 if careful else rng.random()
        if roll < 0.4:  # a well-typed change, so that cases get past vetting
            overrides.append(_plausible_override(rng, seed.data))
        elif roll < 0.5:
            overrides.append(rng.choice(PATH_JUNK))  # no '=' at all
        elif roll < 0.6:
            overrides.append(f"{rng.choice(PATH_JUNK)}={_override_value(rng, mutator)}")
        else:
            overrides.append(f"{_override_path(rng, seed.data)}={_override_value(rng, mutator)}")
    return SetCase(seed.name, seed.text, overrides)


def check_set(path: str, overrides: list[str], seconds: float = 10.0, memory: int | None = None,
              clock: str = "wall") -> Outcome:
    """``graft validate PATH --set=...`` for each override, under the oracle.

    An override argparse cannot read ends as argparse's usage errors do (exit 2, ``error: argument
    --set: ...``): a rejection, held to the same rules for raw messages as the others.
    """
    outcome = run_cli(["validate", path, *(f"--set={text}" for text in overrides)], seconds, memory, clock)
    if outcome.signature == ("SystemExit", "2"):
        said = [line for line in outcome.output.split("\n") if ": error: argument --set: " in line]
        if len(said) != 1:
            return outcome
        for pattern in RAW_PATTERNS:
            if pattern in said[0]:
                return Outcome("failure", "raw", ("raw", pattern, normalise(said[0].split(": ")[-1])), 2,
                               outcome.output, f"raw message: {said[0].strip()[:300]}")
        return Outcome("rejected", rc=2, output=outcome.output, seconds=outcome.seconds)
    return outcome


LAYER_NAMES = ["gru_1", "gru_2", "gru_3", "gru_*", "conv_*", "conv_1", "conv_1_bn", "level", "trend", "trend_*",
               "trend_hidden_1", "*", "*_1", "gru_input", "conv_input", "conv_pool", "nomatch", "GRU_1", "gru_[12]"]


def well_typed_edit(rng, data: Any) -> tuple[Any, str]:
    """An edit that ``graft validate`` accepts on its own (so plan gets to judge it), or nearly so."""
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, list) or not stages or not isinstance(data.get("model"), dict):
        return data, "no stages to edit"
    index = rng.randrange(len(stages))
    stage = stages[index]
    if not isinstance(stage, dict):
        return data, "stage is not a mapping"
    at = f"stages[{index}]"
    model = data["model"]
    choice = rng.randrange(10)
    if choice == 0:
        names = lambda: rng.sample(LAYER_NAMES, rng.randint(0, 3))  # noqa: E731
        params = rng.choice([
            {"freeze": names(), "train": names()},
            {"reinit": names(), "default": rng.choice(["train", "freeze"])},
            {"freeze": names(), "reinit": names(), "freeze_batch_norm": rng.choice([True, False])},
        ])
        stage["policy"] = {"plugin": "layers", "params": params}
    elif choice == 1:
        stage["policy"] = rng.choice([
            {"plugin": "fine_tune_top", "params": {"layers": rng.choice([1, 2, 3, 4, 5, 50, 2**31 - 1])}},
            {"plugin": "progressive", "params": {"groups": rng.sample(LAYER_NAMES, rng.randint(0, 4)),
                                                 "max_rounds": rng.choice([1, 2, 100])}},
            {"plugin": "progressive", "params": {"patience": rng.choice([1, 5])}},
            {"plugin": "replace_head", "params": {"train_extractor": rng.choice([True, False])}},
            {"plugin": "continue"},
        ])
    elif choice == 2:
        stage["heads"] = {
            rng.choice(["level", "trend", "new_head", "digit", "gru_1", "conv_1", "loss", "a" * 60]): {
                "plugin": "dense",
                "loss": rng.choice(["mse", "sparse_categorical_crossentropy", "binary_crossentropy", "huber"]),
                "metrics": rng.sample(["mae", "accuracy", "mse"], rng.randint(0, 2)),
                "params": {"units": rng.choice([1, 2, 3, 7, 100000]), "hidden": rng.choice([[], [4], [4, 4], [100000]]),
                           "dropout": rng.choice([0.0, 0.5, 0.99]),
                           "activation": rng.choice(["linear", "softmax", "sigmoid"])},
            }
            for _ in range(rng.randint(1, 3))
        }
    elif choice == 3:
        stage["init"] = rng.choice([
            {"weights": rng.choice(["data/weights_keras3.graft.npz", "data/weights_keras2.graft.npz",
                                    "data/weights_keras3_conv1d_bn.graft.npz",
                                    "data/weights_keras2_conv1d_bn.graft.npz",
                                    "data/train.npz", "data/garbage.npz", "data/single.npy", "data/a_folder.npz"])},
            {"stage": stages[rng.randrange(index)]["name"]} if index and isinstance(stages[0], dict) else {},
        ])
        if not stage["init"]:
            del stage["init"]
    elif choice == 4:
        model["input_shape"] = rng.choice([[12, 3], [1, 3], [2, 1], [12], [12, 3, 1], [3, 12], [100000, 3],
                                           [12, 100000], [32, 32, 3], [4096, 4096]])
    elif choice == 5 and isinstance(model.get("extractor"), dict):
        layers = (model["extractor"].get("params") or {}).get("layers")
        if isinstance(layers, list) and layers and isinstance(layers[0], dict):
            layer = rng.choice(layers)
            key = rng.choice(["units", "filters", "kernel_size", "strides", "padding", "dropout", "name"])
            layer[key] = {"units": rng.choice([1, 2, 4096, 100000]), "filters": rng.choice([1, 4096, 100000]),
                          "kernel_size": rng.choice([1, 12, 13, 50, 1000]), "strides": rng.choice([1, 2, 12, 13, 1000]),
                          "padding": rng.choice(["same", "valid"]), "dropout": rng.choice([0.0, 0.5]),
                          "name": rng.choice(["level", "trend", "gru_input", "conv_input", "conv_pool",
                                              "trend_hidden_1", "a" * 200, "x1"])}[key]
            return data, f"an extractor layer's {key} = {layer[key]!r}"
    elif choice == 6:
        model["extractor"] = rng.choice([
            {"plugin": "conv1d", "params": {"layers": [{"name": "conv_1", "filters": 4, "kernel_size": 3}],
                                            "batch_norm": rng.choice([True, False])}},
            {"plugin": "gru", "params": {"layers": [{"name": "gru_1", "units": 4}]}},
            {"plugin": "mobilenet", "params": {"variant": rng.choice(["v2", "v3_small"]), "alpha": 0.35,
                                               "weights": rng.choice(["none", "data/train.npz", "imagenet"])}},
        ])
        return data, f"model.extractor = {model['extractor']!r}"
    elif choice == 7:
        stage["data"] = {"source": "npz", "params": {"path": "data/train.npz",
                                                     "targets": rng.choice([{"level": "y_level", "trend": "y_trend"},
                                                                            {"level": "y_trend", "trend": "y_level"}])}}
    elif choice == 8:
        heads = model.get("heads")
        if isinstance(heads, dict) and heads:
            name = rng.choice(list(heads))
            new = rng.choice(["gru_1", "conv_1", "gru_input", "trend_hidden_1", "level_1", "x" * 100, "loss"])
            heads[new] = heads.pop(name)
            return data, f"model.heads: rename {name} -> {new}"
    else:
        stage["callbacks"] = {"early_stopping": {"monitor": rng.choice(["val_loss", "loss", "val_level_loss"])}}
    return data, f"{at} well-typed edit {choice}: {stage.get('policy') if choice < 2 else ''!r:.150}"


def write_case(folder: str, text: str, name: str = "spec.yaml") -> str:
    """Write ``text`` (str, possibly with surrogate-escaped raw bytes) into ``folder``; return the path."""
    path = os.path.join(folder, name)
    with open(path, "wb") as handle:
        handle.write(text.encode("utf-8", "surrogateescape"))
    return path


# -- the oracle -------------------------------------------------------------

RAW_PATTERNS = [
    "object is not iterable", "unhashable type", "NoneType", "has no attribute", "object of type",
    "invalid literal for", "Traceback", "object is not subscriptable", "not supported between instances",
    "unsupported operand", "positional argument", "can't multiply sequence", "object cannot be interpreted",
    "must be real number", "argument must be", "cannot convert float", "maximum recursion depth",
    "got an unexpected keyword", "is not a valid Python", "<class '", "<function ", " object at 0x",
    "KerasTensor", "tf.Tensor", "Received: ",
]
PROBLEM_LINE = re.compile(r"^  [^ \t\r\n].*?(?: \(line \d+\))?: \S")
HEADER = re.compile(r"^error: .*: (\d+) problems?$")


class CaseTimeout(BaseException):
    """Raised by the alarm inside a case that ran too long (not an Exception: nothing may swallow it)."""


@dataclass
class Outcome:
    status: str  # accepted | rejected | failure
    kind: str = ""  # for failures: exception | exit | timeout | memory | format | raw
    signature: tuple = ()
    rc: Any = None
    output: str = ""
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failure"


def _innermost(tb) -> str:
    """The innermost frame of a traceback in graft's or a plugin's code: ``file:function``."""
    frames = traceback.extract_tb(tb)
    for frame in reversed(frames):
        filename = frame.filename.replace("\\", "/")
        if "/graft/" in filename or "/graft_" in filename or "/plugins/" in filename:
            short = filename.split("/core/")[-1].split("/plugins/")[-1]
            return f"{short}:{frame.name}"
    if frames:
        frame = frames[-1]
        return f"{os.path.basename(frame.filename)}:{frame.name}"
    return "?"


def normalise(message: str) -> str:
    """A message with its values blanked, for deduplication."""
    message = re.sub(r"'[^']*'", "'…'", message)
    message = re.sub(r"\d+", "N", message)
    return message[:160]


def judge(rc: Any, stdout: str, stderr: str) -> Outcome:
    """The oracle for a return code and output of ``cli.main``."""
    output = stdout + stderr
    if rc == 0:
        outcome = Outcome("accepted", rc=rc, output=output)
    elif rc == 1:
        outcome = Outcome("rejected", rc=rc, output=output)
        lines = stderr.rstrip("\n").split("\n")
        if not lines[0].startswith("error: "):
            return Outcome(
                "failure", "format", ("format", "no error: line"), rc, output, "stderr does not start with 'error: '"
            )
        header = HEADER.match(lines[0])
        if header:
            problems = lines[1:]
            if int(header.group(1)) != len(problems):
                bad = [line for line in problems if not PROBLEM_LINE.match(line)]
                what = (
                    "PyYAML's reader error over several lines"
                    if '"<unicode string>"' in stderr
                    else "a problem spans several lines"
                )
                return Outcome("failure", "format", ("format", what), rc, output,
                               f"header says {header.group(1)} problems, {len(problems)} lines follow: {bad[:1]!r}")
            for line in problems:
                if not PROBLEM_LINE.match(line):
                    return Outcome(
                        "failure", "format", ("format", normalise(line)), rc, output, f"not a problem line: {line!r}"
                    )
        elif len(lines) > 1 and not all(line.startswith("  ") for line in lines[1:]):
            return Outcome("failure", "format", ("format", "a problem spans several lines"), rc, output,
                           f"unindented continuation: {lines[1]!r}")
    else:
        return Outcome("failure", "exit", ("exit", repr(rc)), rc, output, f"returned {rc!r}")
    for pattern in RAW_PATTERNS:
        if pattern in stderr:
            line = next(line for line in stderr.split("\n") if pattern in line)
            message = line.split(": ", 1)[-1] if ": " in line else line
            if "got NoneType" in message:  # one finding however many fields say it
                message = "expected …, got NoneType None"
            return Outcome("failure", "raw", ("raw", pattern, normalise(message.split(": ")[-1])), rc, output,
                           f"raw message: {line.strip()[:300]}")
    return outcome


@contextlib.contextmanager
def time_limit(seconds: float, clock: str = "wall"):
    """Raise ``CaseTimeout`` in the main thread after ``seconds`` of wall time, or of this process's CPU time.

    ``clock="cpu"`` (ITIMER_PROF) does not blame a case for a machine busy with other
    work; a case blocked without using CPU is then left to the caller's own watchdog.
    """
    def alarm(_signum, _frame):
        raise CaseTimeout(f"over {seconds} s ({clock} time)")

    timer, signum = (signal.ITIMER_PROF, signal.SIGPROF) if clock == "cpu" else (signal.ITIMER_REAL, signal.SIGALRM)
    previous = signal.signal(signum, alarm)
    signal.setitimer(timer, seconds)
    try:
        yield
    finally:
        signal.setitimer(timer, 0)
        signal.signal(signum, previous)


def _wall_backstop(seconds: float, clock: str):
    """Under a CPU-time limit, a wall-time limit well beyond it: a case blocked without using CPU still ends."""
    return time_limit(seconds * 3 + 20, "wall") if clock == "cpu" else contextlib.nullcontext()


@contextlib.contextmanager
def memory_limit(extra_bytes: int | None):
    """Cap the address space at what is mapped now plus ``extra_bytes`` (None: no cap)."""
    if extra_bytes is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        with open("/proc/self/statm") as handle:
            mapped = int(handle.read().split()[0]) * resource.getpagesize()
    except OSError:
        yield
        return
    cap = mapped + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


_REGISTRIES: dict[Any, Any] = {}


@contextlib.contextmanager
def cached_registry():
    """``Registry.discover()`` without arguments answers from a cache while inside.

    Discovery reads every installed distribution's metadata (three quarters of a
    validate case); the plugins do not change between cases, and the registry is
    not what is fuzzed. Restored on exit, so other tests see the real method.
    """
    from graft.plugins.registry import Registry

    original = Registry.__dict__["discover"]

    def discover(cls, paths=None, enabled=None):
        if paths is not None or enabled is not None:
            return original.__func__(cls, paths, enabled)
        key = os.environ.get("GRAFT_PLUGINS")
        if key not in _REGISTRIES:
            _REGISTRIES[key] = original.__func__(cls)
        return _REGISTRIES[key]

    Registry.discover = classmethod(discover)
    try:
        yield
    finally:
        Registry.discover = original


def run_cli(argv: list[str], seconds: float = 10.0, memory: int | None = None, clock: str = "wall") -> Outcome:
    """Run ``graft.commands.cli.main(argv)`` in this process under the oracle."""
    from graft.commands import cli

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    rc: Any = None
    try:
        with (
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), cached_registry(),
            memory_limit(memory), time_limit(seconds, clock), _wall_backstop(seconds, clock),
        ):
            rc = cli.main(argv)
    except CaseTimeout:
        tb = sys.exc_info()[2]
        return Outcome("failure", "timeout", ("timeout", _innermost(tb)), None, out.getvalue() + err.getvalue(),
                       f"no answer within {seconds} s ({clock} time); stopped in {_innermost(tb)}",
                       time.perf_counter() - start)
    except SystemExit as exc:  # argparse; not expected with these argv
        return Outcome("failure", "exit", ("SystemExit", repr(exc.code)), exc.code, out.getvalue() + err.getvalue(),
                       f"SystemExit({exc.code!r})", time.perf_counter() - start)
    except BaseException as exc:  # noqa: BLE001 - every escape is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        tb = exc.__traceback__
        kind = "memory" if isinstance(exc, MemoryError) else "exception"
        lines = traceback.format_exception(type(exc), exc, tb)
        text = "".join(lines[-12:])
        del tb
        return Outcome("failure", kind, (type(exc).__name__, _innermost(exc.__traceback__)), None,
                       out.getvalue() + err.getvalue(), f"{type(exc).__name__}: {str(exc)[:300]}\n{text}",
                       time.perf_counter() - start)
    outcome = judge(rc, out.getvalue(), err.getvalue())
    outcome.seconds = time.perf_counter() - start
    return outcome


def check_file(path: str, command: str = "validate", seconds: float = 10.0, memory: int | None = None,
               clock: str = "wall") -> Outcome:
    """``command`` is ``validate``, ``plan`` or ``plan-json`` (``plan --format json``, whose output must parse)."""
    if command != "plan-json":
        return run_cli([command, path], seconds, memory, clock)
    outcome = run_cli(["plan", path, "--format", "json"], seconds, memory, clock)
    if outcome.status == "accepted":
        import json

        try:
            stages = json.loads(outcome.output)["stages"]
            assert isinstance(stages, list) and stages
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            outcome.status, outcome.kind = "failure", "json"
            outcome.signature = ("json", type(exc).__name__)
            outcome.detail = f"plan --format json printed no JSON with stages: {exc!r}"
    return outcome


# -- the schema and validate agree ---------------------------------------------

# What ``graft validate`` refuses that a JSON Schema of the spec cannot know: the problem messages (regular
# expressions over ``path (line N): message``) that need more than the spec's own values to decide. A spec
# refused only for such problems may be accepted by the schema; any other difference is a disagreement.
SCHEMA_CANNOT_KNOW: dict[str, str] = {
    # what is on disk
    "a file or folder that does not exist": r"\): (?:\w+ )*(?:file|folder) not found: ",
    "what a file holds, or what a path is": r"\.(?:path|validation_path|directory|validation_directory|weights|model)"
                                            r" \(line \d+\): (?!expected |must )",
    # what other parts of the spec say
    "the names of earlier stages": r"\.init\.stage \(line \d+\): (?:no earlier stage|stage '.*' cannot start from)",
    "names unique across a list of mappings (uniqueItems compares whole items)":
        r"\.name \(line \d+\): (?:duplicate layer name '|stage name '.*' (?:is used by|differs from))",
    "the metrics a stage's heads log": r"\.monitor \(line \d+\): '.*' is not logged by this stage",
    "model.input_shape, for a plugin's params": r"\(line \d+\): model\.input_shape .* does not fit ",
    # plugins' own validator functions: code the schema cannot read (they could declare JSON Schema: a follow-up)
    "synthetic's target kinds": r"\.targets\.\w+ \(line \d+\): '.*' is not one of: level, trend",
    "sklearn_digits' image size": r"\.params\.size \(line \d+\): must be a multiple of 8",
    "sklearn_digits' digits": r"\.params\.classes\[\d+\] \(line \d+\): digit .* (?:is not 0\.\.9|appears twice)",
    "sklearn_digits' channels": r"\.params\.channels \(line \d+\): must be 1 or 3, got ",
    "fine_tune_top's layer_decay": r"\.layer_decay \(line \d+\): must be greater than 0 and at most 1, got ",
}


@dataclass
class Agreement:
    """``graft validate`` and the JSON Schema (``graft schema``) on one spec file."""

    comparable: bool  # False: no YAML data to compare (not a file, not UTF-8, not YAML, duplicate keys, ...)
    validate: list[str] = field(default_factory=list)  # the problems validate reported (none: accepted)
    schema: list[str] = field(default_factory=list)  # the schema's errors (none: accepted)
    excused: list[str] = field(default_factory=list)  # validate's problems a schema cannot know

    @property
    def agrees(self) -> bool:
        if not self.comparable:
            return True
        if self.schema:  # the schema must never refuse what validate accepts
            return bool(self.validate)
        return all(line in self.excused for line in self.validate)

    def describe(self) -> str:
        if self.schema and not self.validate:
            return "the schema refuses a spec graft validate accepts:\n  " + "\n  ".join(self.schema[:5])
        unexcused = [line for line in self.validate if line not in self.excused]
        return "graft validate refuses a spec the schema accepts:\n  " + "\n  ".join(unexcused[:5])


_SCHEMA_VALIDATORS: dict[Any, Any] = {}


def schema_validator():
    """A ``jsonschema`` validator of ``graft schema``'s schema for the installed plugins (made once)."""
    key = os.environ.get("GRAFT_PLUGINS")
    if key not in _SCHEMA_VALIDATORS:
        import jsonschema

        from graft.plugins.registry import Registry
        from graft.spec.schema import spec_schema

        with cached_registry():
            schema = spec_schema(Registry.discover())
        _SCHEMA_VALIDATORS[key] = jsonschema.Draft202012Validator(schema)
    return _SCHEMA_VALIDATORS[key]


def schema_agreement(path: str) -> Agreement:
    """Validate ``path`` and check its YAML data against the schema; see ``Agreement.agrees``."""
    from graft.base.problems import GraftError, SpecError
    from graft.plugins.registry import Registry
    from graft.spec.specfile import load_spec, read_spec_text
    from graft.spec.yamlfile import load_yaml

    try:
        document = load_yaml(read_spec_text(path), path)
    except Exception:  # noqa: BLE001 - not readable as YAML data: nothing for a schema to check
        return Agreement(False)
    if document.unreadable or document.duplicates:
        return Agreement(False)
    try:
        schema = [f"{_fmt(tuple(error.absolute_path))}: {error.message[:300]}"
                  for error in schema_validator().iter_errors(document.data)]
    except RecursionError:
        return Agreement(False)
    with cached_registry():
        try:
            load_spec(path, Registry.discover())
            problems: list[str] = []
        except SpecError as error:
            problems = list(error.lines)
        except GraftError as error:
            problems = [str(error)]
    excused = [line for line in problems
               if any(re.search(pattern, line) for pattern in SCHEMA_CANNOT_KNOW.values())]
    return Agreement(True, problems, schema, excused)


def minimise(text: str, still_fails: Callable[[str], bool], budget: int = 150) -> str:
    """Drop lines (then chunks of characters) while ``still_fails`` holds; at most ``budget`` tries."""
    try:  # a flow-style (one-line) spec shrinks better once in block style
        block = yaml.safe_dump(yaml.safe_load(text), sort_keys=False, default_flow_style=False, allow_unicode=True)
        if block != text and still_fails(block):
            text = block
    except Exception:  # noqa: BLE001 - not YAML PyYAML can round-trip; shrink the text as it is
        pass
    lines = text.split("\n")
    tries = 0
    chunk = max(1, len(lines) // 2)
    while chunk >= 1 and tries < budget:
        index, changed = 0, False
        while index < len(lines) and tries < budget:
            candidate = lines[:index] + lines[index + chunk:]
            tries += 1
            if candidate and still_fails("\n".join(candidate)):
                lines, changed = candidate, True
            else:
                index += chunk
        if not changed:
            chunk //= 2
    return "\n".join(lines)


def finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
