"""Plugin discovery through the ``graft`` entry-point group, name lookup, and the hook facade.

No other module calls ``pm.hook``: the ``Registry`` methods ``build_extractor``,
``build_head``, ``transfer_policy`` and ``load_data`` call exactly the plugin a
spec names, under the error contract documented in ``graft.plugins.hookspecs``, and check
what it returns (``graft.plugins.hookresults``).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from typing import TYPE_CHECKING, Any

import pluggy

from graft.base.backend import import_keras
from graft.base.problems import GraftError, Path, SpecProblem, did_you_mean, listing
from graft.plugins import hookresults, hookspecs
from graft.plugins.entrypoints import EntryPoint, distributions_with
from graft.plugins.layers import EXTRACTOR
from graft.plugins.plugininfo import PluginInfo, describe  # noqa: F401 - describe: graft plugins' rows, re-exported

if TYPE_CHECKING:
    from graft.plugins.datasets import Data
    from graft.plugins.layers import LayerInfo
    from graft.plugins.rounds import Rounds

GROUP = "graft"
CORE_DISTRIBUTION = "keras-graft"
ENABLE_VARIABLE = "GRAFT_PLUGINS"
HOOK_OF_KIND = {  # the hook that makes a plugin provide a kind
    "extractor": "build_extractor",
    "head": "build_head",
    "policy": "transfer_policy",
    "data source": "load_data",
}
DECLARING_HOOKS = {"extractor_layers": "extractor", "head_layers": "head"}  # optional: layer names from params
KIND_OF_HOOK = {**{hook: kind for kind, hook in HOOK_OF_KIND.items()}, **DECLARING_HOOKS}
DEBUG_VARIABLE = "GRAFT_DEBUG"
DEBUG_HINT = f" (set {DEBUG_VARIABLE}=1 or use graft --debug for the traceback)"
HEAVY_MODULES = ("tensorflow", "keras")


def debug_enabled(environ=os.environ) -> bool:
    """True when ``GRAFT_DEBUG`` is set (not empty, not 0): plugin errors keep their original exception chained."""
    return environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def _described(exc: BaseException) -> str:
    """``ValueError: message``, or the bare type name for an exception without a message."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _heavy_modules_loaded() -> set[str]:
    return {name for name in HEAVY_MODULES if name in sys.modules}


class PluginError(GraftError):
    """A plugin that cannot be found, loaded or run."""


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


LISTED = "listed"  # an entry point not imported yet (a spec has not named it)


class Registry:
    """The plugins of one process, by name.

    ``discover`` only lists the entry points; a plugin's module is imported the first
    time a spec names it (``get``), so a command imports only the plugins it uses.
    ``infos`` and ``names`` import and check every plugin (``graft plugins``, error
    messages listing what is installed).
    """

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self._infos: list[PluginInfo] = []
        self._unloaded: dict[str, list[tuple[PluginInfo, EntryPoint]]] = {}

    # -- loading ---------------------------------------------------------

    @classmethod
    def discover(cls, paths: list[str] | None = None, enabled: set[str] | None = None) -> Registry:
        """List every ``graft`` entry point of the installed distributions (each is imported when first named).

        ``paths`` limits the search to those folders (as ``sys.path`` entries);
        ``enabled`` (default: ``GRAFT_PLUGINS``) limits third-party plugins to
        those names; the core's own built-ins are always enabled.  A name that
        two distributions claim is a conflict for both, without importing either.
        """
        registry = cls()
        if enabled is None:
            enabled = enabled_names()
        seen: set[str] = set()
        for dist in distributions_with(GROUP, paths):  # the metadata of those in the group only
            dist_name = dist.name
            if _normalise(dist_name) in seen:
                continue  # the same distribution found twice on sys.path: first wins, as in importlib
            seen.add(_normalise(dist_name))
            for entry_point in dist.entry_points:
                info = PluginInfo(entry_point.name, dist_name, dist.version, entry_point.value)
                registry._infos.append(info)
                if (
                    enabled is not None
                    and entry_point.name not in enabled
                    and _normalise(dist_name) != CORE_DISTRIBUTION
                ):
                    info.status = "disabled"
                    info.error = f"not listed in {ENABLE_VARIABLE}"
                    continue
                info.status = LISTED
                registry._unloaded.setdefault(entry_point.name, []).append((info, entry_point))
        for name, claims in list(registry._unloaded.items()):
            if len(claims) > 1:  # nothing of a claimed name is imported: no one could call it
                del registry._unloaded[name]
                registry._conflict([info for info, _ in claims])
        return registry

    @property
    def infos(self) -> list[PluginInfo]:
        """Every plugin, each imported and checked (those not yet loaded are loaded now)."""
        self.load_all()
        return self._infos

    @property
    def listed(self) -> list[PluginInfo]:
        """Every plugin as far as it is known, importing none (status ``listed``: not imported yet)."""
        return list(self._infos)

    def load_all(self) -> Registry:
        """Import and check every enabled plugin (``graft plugins``; before Keras reads a saved model whose
        custom layers a plugin registers); returns the registry."""
        for name in list(self._unloaded):
            self._load(name)
        return self

    def _load(self, name: str) -> None:
        """Import the entry point named ``name``, if it is listed and not imported yet."""
        for info, entry_point in self._unloaded.pop(name, ()):
            heavy_before = _heavy_modules_loaded()
            try:
                loaded = entry_point.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down
                self._broken(info, f"{type(exc).__name__}: {exc}")
                continue
            info.imports_tensorflow = bool(_heavy_modules_loaded() - heavy_before)
            info.status = "ok"
            self._attach(info, loaded)

    def register(self, plugin: Any, name: str, distribution: str = "(in-process)", version: str = "") -> PluginInfo:
        """Register ``plugin`` under ``name`` in this process (for tests and embedding)."""
        self._load(name)  # an installed plugin of that name claims it too
        info = PluginInfo(name, distribution, version, repr(plugin))
        claimed = [other for other in self._infos if other.name == name and other.status in ("ok", "conflict")]
        self._infos.append(info)
        if claimed:
            self._conflict([*claimed, info])
        else:
            self._attach(info, plugin)
        if info.status != "ok":
            raise PluginError(f"plugin '{name}' ({info.origin}) {info.status}: {info.error}")
        return info

    def _conflict(self, claims: list[PluginInfo]) -> None:
        """Every one of ``claims`` (one name, several distributions) is a conflict, none callable."""
        holders = [info.distribution for info in claims]
        for info in claims:
            if info.plugin is not None and self.pm.is_registered(info.plugin):
                self.pm.unregister(info.plugin)
            info.status = "conflict"
            info.error = f"name '{info.name}' is claimed by {len(holders)} distributions: {', '.join(holders)}"

    def _broken(self, info: PluginInfo, error: str) -> None:
        info.status, info.error = "broken", error

    def _attach(self, info: PluginInfo, loaded: Any) -> None:
        """Instantiate (a class) and register what an entry point named, checking its hooks."""
        try:
            plugin = loaded() if isinstance(loaded, type) else loaded
        except Exception as exc:  # noqa: BLE001 - a plugin class that cannot be instantiated is broken, not fatal
            self._broken(info, f"{type(exc).__name__}: {exc}")
            return
        try:
            self.pm.register(plugin, name=info.name)
        except Exception as exc:  # noqa: BLE001
            self._broken(info, f"{type(exc).__name__}: {exc}")
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
            self._broken(info, hint or str(exc))
            return
        callers = [caller.name for caller in self.pm.get_hookcallers(plugin) or ()]
        provides = tuple(kind for kind, hook in HOOK_OF_KIND.items() if hook in callers)
        lonely = [hook for hook, kind in DECLARING_HOOKS.items() if hook in callers and kind not in provides]
        if lonely:  # a declaration of layers that nothing builds
            self.pm.unregister(plugin)
            self._broken(info, f"implements {lonely[0]} but not {HOOK_OF_KIND[DECLARING_HOOKS[lonely[0]]]}")
            return
        if not provides:
            self.pm.unregister(plugin)
            self._broken(info, f"implements no graft hook ({', '.join(HOOK_OF_KIND.values())})")
            return
        info.plugin, info.provides = plugin, provides

    # -- lookup ----------------------------------------------------------

    def names(self, kind: str) -> list[str]:
        """Names of the working plugins that provide ``kind`` (every plugin is imported to know)."""
        return sorted(info.name for info in self.infos if info.status == "ok" and kind in info.provides)

    def get(self, kind: str, name: str) -> PluginInfo:
        """The working plugin ``name`` that provides ``kind``, or a ``PluginError`` that says why not.

        Imports the plugin if this is the first time it is named."""
        self._load(name)
        found = [info for info in self._infos if info.name == name]
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
            try:
                annotation = eval(annotation, function.__globals__)  # noqa: S307 - the plugin's own annotation
            except Exception as exc:  # noqa: BLE001 - a plugin's broken annotation is its error, not a crash
                raise PluginError(
                    f"{kind} plugin '{name}' ({self.origin(kind, name)}): the params annotation "
                    f"'{parameter.annotation}' of {HOOK_OF_KIND[kind]} does not resolve: {_described(exc)}"
                ) from (exc if debug_enabled() else None)
        return annotation

    def _implementation(self, kind: str, name: str) -> pluggy.HookImpl:
        plugin = self.get(kind, name).plugin
        caller = getattr(self.pm.hook, HOOK_OF_KIND[kind])
        return next(impl for impl in caller.get_hookimpls() if impl.plugin is plugin)

    # -- the typed facade over pm.hook ---------------------------------------
    #
    # ``at`` is the YAML path of the spec entry the call serves (``("model", "extractor")``,
    # ``("stages", 1, "data")``); a SpecProblem from the hook comes out with its paths
    # under ``at + ("params",)``.  ``at=None`` leaves them relative to the params.

    def build_extractor(
        self, name: str, params: Any, input_shape: tuple[int, ...], base_dir: str = ".", *, at: Path | None = None
    ) -> Any:
        """The extractor's ``keras.Model``."""
        keras = import_keras()
        answer = self._call("extractor", name, at, params=params, input_shape=tuple(input_shape), base_dir=base_dir)
        return self._checked("extractor", name, hookresults.extractor_model, keras, answer)

    def build_head(self, name: str, params: Any, features: Any, head_name: str, *, at: Path | None = None) -> Any:
        """The head's output tensor, made by a layer named ``head_name``."""
        answer = self._call("head", name, at, params=params, features=features, name=head_name)
        return self._checked("head", name, hookresults.head_output, answer, head_name)

    def extractor_layers(
        self, name: str, params: Any, input_shape: tuple[int, ...], *, at: Path | None = None
    ) -> tuple[LayerInfo, ...] | None:
        """The extractor's layers as its plugin declares them from its params, or None if it does not say."""
        answer = self._call("extractor", name, at, params=params, input_shape=tuple(input_shape),
                            hook="extractor_layers")
        return self._checked("extractor", name, hookresults.declared_layers, answer, EXTRACTOR,
                             hook="extractor_layers")

    def head_layers(
        self, name: str, params: Any, head_name: str, *, at: Path | None = None
    ) -> tuple[LayerInfo, ...] | None:
        """The head's layers as its plugin declares them from its params, or None if it does not say."""
        answer = self._call("head", name, at, params=params, name=head_name, hook="head_layers")
        return self._checked("head", name, hookresults.declared_layers, answer, head_name,
                             hook="head_layers")

    def transfer_policy(
        self, name: str, params: Any, layers: tuple[LayerInfo, ...], *, at: Path | None = None
    ) -> Rounds:
        """The policy's decision for every layer of ``layers``, as rounds (one for most policies)."""
        answer = self._call("policy", name, at, params=params, layers=layers)
        return self._checked("policy", name, hookresults.policy_rounds, answer, layers)

    def load_data(self, name: str, params: Any, base_dir: str, *, at: Path | None = None) -> Data:
        """The stage's ``graft.Dataset`` or ``graft.Stream``."""
        answer = self._call("data source", name, at, params=params, base_dir=base_dir)
        return self._checked("data source", name, hookresults.dataset, answer)

    def _call(self, kind: str, name: str, at: Path | None, /, hook: str | None = None, **kwargs: Any) -> Any:
        """Call the hook of plugin ``name`` alone, under the error contract of ``graft.plugins.hookspecs``.

        ``hook`` is the kind's own hook by default; an optional one (``DECLARING_HOOKS``) may answer
        nothing: then None.
        """
        info = self.get(kind, name)
        optional = hook is not None
        hook = hook or HOOK_OF_KIND[kind]
        others = [plugin for plugin in self.pm.get_plugins() if plugin is not info.plugin]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
        try:
            results = caller(**kwargs)
        except SpecProblem as problem:
            if at is None:
                raise
            raise SpecProblem.of(problem.prefixed((*at, "params"))) from (problem if debug_enabled() else None)
        except Exception as exc:  # noqa: BLE001 - whatever a plugin raises ends as one message naming it
            raise PluginError(
                f"{kind} plugin '{name}' ({info.origin}) failed in {hook}: {_described(exc)}{DEBUG_HINT}"
            ) from (exc if debug_enabled() else None)
        if not results:
            if optional:
                return None
            raise PluginError(f"{kind} plugin '{name}' ({info.origin}) returned nothing from {hook}")
        return results[0]

    def _checked(self, kind: str, name: str, check, *args: Any, hook: str | None = None) -> Any:
        hook = hook or HOOK_OF_KIND[kind]
        try:
            return check(*args)
        except hookresults.WrongAnswer as wrong:
            raise PluginError(f"{kind} plugin '{name}' ({self.origin(kind, name)}) {hook}: {wrong}") from None

    def origin(self, kind: str, name: str) -> str:
        return self.get(kind, name).origin
