"""The hooks a keras-graft plugin implements: the public path of ``graft.plugins.hookspecs``, the plugin
author's manual (each hook's arguments, what it returns, and the error contract)."""

from graft.plugins.hookspecs import (
    build_extractor,
    build_head,
    extractor_layers,
    head_layers,
    hookimpl,
    hookspec,
    load_data,
    transfer_policy,
)

__all__ = [
    "build_extractor", "build_head", "extractor_layers", "head_layers", "hookimpl", "hookspec", "load_data",
    "transfer_policy",
]
