"""Types in words, for messages: ``an integer``, ``a list of GRU layers``, ``a mapping with keys ...``."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal

import attrs

from graft.base.problems import listing


def is_union(type_) -> bool:
    return typing.get_origin(type_) in (typing.Union, types.UnionType)


SCALAR_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}


def noun(cls: type) -> str:
    """``GRULayer`` -> ``GRU layer``: an attrs class named in words."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*|[a-z0-9]+", cls.__name__)
    return " ".join(word if word.isupper() and len(word) > 1 else word.lower() for word in words)


def describe(type_) -> str:
    """What a value of ``type_`` is, in words: ``an integer``, ``a list of stages``, ..."""
    if type_ in SCALAR_WORDS:
        return SCALAR_WORDS[type_]
    if type_ is Any:
        return "any value"
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if type_ in (list, tuple) or origin in (list, tuple):
        item = args[0] if args else None
        return f"a list of {noun(item)}s" if isinstance(item, type) and attrs.has(item) else "a list"
    if type_ is dict or origin is dict:
        return "a mapping"
    if is_union(type_):
        return " or ".join(describe(arg) for arg in args)
    if origin is Literal:
        return f"one of {listing(args)}"
    if isinstance(type_, type) and attrs.has(type_):
        return f"a mapping with keys {listing([field.name for field in attrs.fields(type_) if field.init])}"
    if isinstance(type_, tuple):  # attrs.validators.instance_of((int, float))
        return " or ".join(describe(member) for member in type_)
    return f"a {getattr(type_, '__name__', type_)}"
