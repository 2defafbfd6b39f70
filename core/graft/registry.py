"""Plugin discovery through the ``graft`` entry-point group, name lookup, and the hook facade.

No other module calls ``pm.hook``: the ``Registry`` methods ``build_extractor``,
``build_head``, ``transfer_policy`` and ``load_data`` call exactly the plugin a
spec names.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import inspect
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from graft import hookspecs
from graft.problems import GraftError, did_you_mean, listing

GROUP = "graft"
CORE_DISTRIBUTION = "keras-graft"
ENABLE_VARIABLE = "GRAFT_PLUGINS"
KIND_OF_HOOK = {
    "build_extractor": "extractor",
    "build_head": "head",
    "transfer_policy": "policy",
    "load_data": "data source",
}
HOOK_OF_KIND = {kind: hook for hook, kind in KIND_OF_HOOK.items()}


class PluginError(GraftError):
    """A plugin that cannot be found, loaded or run."""


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
    status: str = "ok"  # ok | broken | conflict | disabled

    @property
    def origin(self) -> str:
        return f"distribution {self.distribution} {self.version}, entry point {self.name} = {self.entry_point}"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _a(word: str) -> str:
    """The indefinite article for ``word``: ``a head``, ``an extractor``."""
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"


def enabled_names(environ=os.environ) -> set[str] | None:
    """Names listed in ``GRAFT_PLUGINS`` (comma-separated), or None if unset."""
    value = environ.get(ENABLE_VARIABLE)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class Registry:
    """The plugins of one process, by name."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []

    # -- loading ---------------------------------------------------------

    @classmethod
    def discover(cls, paths: list[str] | None = None, enabled: set[str] | None = None) -> Registry:
        """Load every ``graft`` entry point of the installed distributions.

        ``paths`` limits the search to those folders (as ``sys.path`` entries);
        ``enabled`` (default: ``GRAFT_PLUGINS``) limits third-party plugins to
        those names; the core's own built-ins always load.
        """
        registry = cls()
        if enabled is None:
            enabled = enabled_names()
        seen: set[str] = set()
        distributions = importlib.metadata.distributions(**({"path": paths} if paths is not None else {}))
        for dist in distributions:
            dist_name = dist.metadata["Name"] or "(unnamed)"
            if _normalise(dist_name) in seen:
                continue  # the same distribution found twice on sys.path: first wins, as in importlib
            seen.add(_normalise(dist_name))
            for entry_point in dist.entry_points:
                if entry_point.group != GROUP:
                    continue
                info = PluginInfo(entry_point.name, dist_name, dist.version, entry_point.value)
                if enabled is not None and entry_point.name not in enabled and _normalise(dist_name) != CORE_DISTRIBUTION:
                    info.status = "disabled"
                    info.error = f"not listed in {ENABLE_VARIABLE}"
                    registry.infos.append(info)
                    continue
                try:
                    loaded = entry_point.load()
                except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
                    registry._add_broken(info, f"{type(exc).__name__}: {exc}")
                    continue
                registry._add(info, loaded)
        return registry

    def register(self, plugin: Any, name: str, distribution: str = "(in-process)", version: str = "") -> PluginInfo:
        """Register ``plugin`` under ``name`` in this process (for tests and embedding)."""
        info = PluginInfo(name, distribution, version, repr(plugin))
        self._add(info, plugin)
        if info.status != "ok":
            raise PluginError(f"plugin '{name}' ({info.origin}) {info.status}: {info.error}")
        return info

    def _add_broken(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "broken", error
        self.infos.append(info)

    def _add(self, info: PluginInfo, loaded: Any) -> None:
        try:
            plugin = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:  # noqa: BLE001 - a plugin class that cannot be instantiated is broken, not fatal
            self._add_broken(info, f"{type(exc).__name__}: {exc}")
            return
        claimed = [other for other in self.infos if other.name == info.name and other.status in ("ok", "conflict")]
        if claimed:
            for other in claimed:
                if other.plugin is not None and self.pm.is_registered(other.plugin):
                    self.pm.unregister(other.plugin)
                other.status = "conflict"
            holders = [other.distribution for other in claimed] + [info.distribution]
            for each in (*claimed, info):
                each.error = f"name '{info.name}' is claimed by {len(holders)} distributions: {', '.join(holders)}"
            info.status = "conflict"
            self.infos.append(info)
            return
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # noqa: BLE001
            self._add_broken(info, f"{type(exc).__name__}: {exc}")
            return
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(plugin)
            known = list(KIND_OF_HOOK)
            unknown = [
                attr for attr in dir(plugin)
                if attr not in known and self.pm.parse_hookimpl_opts(plugin, attr) is not None
            ]
            hint = "; ".join(
                f"'{name}' is not a graft hook{did_you_mean(name, known) or ' (hooks: ' + ', '.join(known) + ')'}"
                for name in unknown
            )
            self._add_broken(info, hint or str(exc))
            return
        provides = tuple(KIND_OF_HOOK[caller.name] for caller in self.pm.get_hookcallers(plugin) or ())
        if not provides:
            self.pm.unregister(plugin)
            self._add_broken(info, f"implements no graft hook ({', '.join(KIND_OF_HOOK)})")
            return
        info.plugin, info.provides = plugin, provides
        self.infos.append(info)

    # -- lookup ----------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Names of the working plugins that provide ``kind``."""
        return sorted(info.name for info in self.infos if info.status == "ok" and kind in info.provides)

    def get(self, kind: str, name: str) -> PluginInfo:
        """The working plugin ``name`` that provides ``kind``, or a ``PluginError`` that says why not."""
        found = [info for info in self.infos if info.name == name]
        working = [info for info in found if info.status == "ok"]
        if working and kind in working[0].provides:
            return working[0]
        if working:
            what = " and ".join(working[0].provides)
            return self._fail(f"'{name}' is {_a(what)} {what} plugin, not {_a(kind)} {kind}", kind, name)
        if found and found[0].status == "broken":
            info = found[0]
            raise PluginError(f"{kind} plugin '{name}' is installed but failed to load ({info.origin}): {info.error}")
        if found and found[0].status == "conflict":
            raise PluginError(f"{kind} plugin '{name}': {found[0].error}; uninstall all but one")
        if found and found[0].status == "disabled":
            raise PluginError(
                f"{kind} plugin '{name}' is installed ({found[0].origin}) but {ENABLE_VARIABLE} does not list it"
            )
        return self._fail(f"unknown {kind} '{name}'", kind, name)

    def _fail(self, message: str, kind: str, name: str):
        names = self.names(kind)
        raise PluginError(
            f"{message}; installed {kind} plugins: {listing(names)}{did_you_mean(name, names)}"
        )

    def params_class(self, kind: str, name: str) -> type | None:
        """The attrs class the plugin's hook annotates ``params`` with, or None."""
        function = self._implementation(kind, name).function
        parameter = inspect.signature(function).parameters.get("params")
        if parameter is None or parameter.annotation is inspect.Parameter.empty:
            return None  # no params argument (pluggy passes only the arguments a hook names) or no annotation
        annotation = parameter.annotation
        if isinstance(annotation, str):  # from __future__ import annotations
            annotation = eval(annotation, function.__globals__)  # noqa: S307 - the plugin's own annotation
        return annotation

    def _implementation(self, kind: str, name: str) -> pluggy.HookImpl:
        plugin = self.get(kind, name).plugin
        caller = getattr(self.pm.hook, HOOK_OF_KIND[kind])
        return next(impl for impl in caller.get_hookimpls() if impl.plugin is plugin)

    # -- the typed facade over pm.hook ---------------------------------------

    def _call(self, kind: str, name: str, /, **kwargs: Any) -> Any:
        info = self.get(kind, name)
        others = [plugin for plugin in self.pm.get_plugins() if plugin is not info.plugin]
        caller = self.pm.subset_hook_caller(HOOK_OF_KIND[kind], remove_plugins=others)
        results = caller(**kwargs)
        if not results:
            raise PluginError(f"{kind} plugin '{name}' ({info.origin}) returned nothing from {HOOK_OF_KIND[kind]}")
        return results[0]

    def build_extractor(self, name: str, params: Any, input_shape: tuple[int, ...], base_dir: str = ".") -> Any:
        return self._call("extractor", name, params=params, input_shape=tuple(input_shape), base_dir=base_dir)

    def build_head(self, name: str, params: Any, features: Any, head_name: str) -> Any:
        return self._call("head", name, params=params, features=features, name=head_name)

    def transfer_policy(self, name: str, params: Any, layers: tuple) -> dict:
        return self._call("policy", name, params=params, layers=layers)

    def load_data(self, name: str, params: Any, base_dir: str) -> Any:
        return self._call("data source", name, params=params, base_dir=base_dir)

    def origin(self, kind: str, name: str) -> str:
        return self.get(kind, name).origin


def describe(infos: Iterable[PluginInfo]) -> list[dict[str, str]]:
    """Rows for ``graft plugins``."""
    return [
        {
            "name": info.name,
            "provides": ", ".join(info.provides) or "-",
            "distribution": f"{info.distribution} {info.version}".strip(),
            "status": info.status if not info.error else f"{info.status}: {info.error}",
        }
        for info in sorted(infos, key=lambda info: info.name)
    ]
