"""What ``graft plugins`` knows of each installed entry point, and its rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

SLOW_IMPORT = "imports TensorFlow when loaded: graft validate gets slow; import keras inside the hooks"


@attrs.define
class PluginInfo:
    """One entry point of group ``graft`` and what became of it."""

    name: str
    distribution: str
    version: str
    entry_point: str
    plugin: Any = None
    provides: tuple[str, ...] = ()
    error: str | None = None
    status: str = "ok"  # ok | broken | conflict | disabled | listed (not imported yet: no spec named it)
    imports_tensorflow: bool = False  # loading the entry point put tensorflow or keras into sys.modules

    @property
    def origin(self) -> str:
        return f"distribution {self.distribution} {self.version}, entry point {self.name} = {self.entry_point}"


def describe(infos: Iterable[PluginInfo]) -> list[dict[str, str]]:
    """Rows for ``graft plugins``."""
    return [
        {
            "name": info.name,
            "provides": ", ".join(info.provides) or "-",
            "distribution": f"{info.distribution} {info.version}".strip(),
            "status": _status(info),
        }
        for info in sorted(infos, key=lambda info: info.name)
    ]


def _status(info: PluginInfo) -> str:
    status = info.status if not info.error else f"{info.status}: {info.error}"
    return f"{status} ({SLOW_IMPORT})" if info.imports_tensorflow else status
