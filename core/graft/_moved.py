"""Module paths of keras-graft 0.1, still importable after the core was grouped into wings (0.2).

``import graft.stages`` gives the module now at ``graft.runs.stages`` (the same module object,
so its functions and classes are the same) and warns once with ``DeprecationWarning``.
``graft.data``, ``graft.spec`` and ``graft.planning`` are wings now; they re-export what the old modules held.
"""

from __future__ import annotations

import importlib
import sys
import warnings

MOVED = {
    "graft.api": "graft.finished.api",
    "graft.arrayfile": "graft.plugins.arrayfile",
    "graft.augment": "graft.data.augment",
    "graft.autonames": "graft.plugins.autonames",
    "graft.backend": "graft.base.backend",
    "graft.builder": "graft.model.builder",
    "graft.builtins.npzfile": "graft.data.npzfile",
    "graft.cache_command": "graft.commands.cache",
    "graft.callbacks": "graft.model.callbacks",
    "graft.cli": "graft.commands.cli",
    "graft.cluster": "graft.distribute.cluster",
    "graft.conformance": "graft.authoring.conformance",
    "graft.conformance_spec": "graft.authoring.conformance_spec",
    "graft.convert": "graft.spec.convert",
    "graft.curves": "graft.reports.curves",
    "graft.datacheck": "graft.data.datacheck",
    "graft.epochlog": "graft.model.epochlog",
    "graft.exporting": "graft.finished.exporting",
    "graft.feature_cache": "graft.features.cache",
    "graft.feature_files": "graft.features.files",
    "graft.feature_store": "graft.features.store",
    "graft.hookresults": "graft.plugins.hookresults",
    "graft.imagefiles": "graft.data.imagefiles",
    "graft.initsource": "graft.model.initsource",
    "graft.initspec": "graft.spec.initspec",
    "graft.inputs": "graft.runs.inputs",
    "graft.interrupts": "graft.runs.interrupts",
    "graft.keras_distribute": "graft.distribute.keras_fit",
    "graft.launcher": "graft.distribute.launcher",
    "graft.layers": "graft.plugins.layers",
    "graft.losses": "graft.model.losses",
    "graft.lrscale": "graft.model.lrscale",
    "graft.memory": "graft.base.memory",
    "graft.modelfile": "graft.model.modelfile",
    "graft.new_plugin_command": "graft.commands.new_plugin",
    "graft.observer": "graft.runs.observer",
    "graft.optimizers": "graft.model.optimizers",
    "graft.outfile": "graft.finished.outfile",
    "graft.overrides": "graft.spec.overrides",
    "graft.pipeline": "graft.data.pipeline",
    "graft.plannotes": "graft.plugins.plannotes",
    "graft.planview": "graft.planning.view",
    "graft.plugininfo": "graft.plugins.plugininfo",
    "graft.problems": "graft.base.problems",
    "graft.provenance": "graft.runs.provenance",
    "graft.registry": "graft.plugins.registry",
    "graft.renaming": "graft.spec.renaming",
    "graft.report": "graft.records.report",
    "graft.report_command": "graft.commands.report",
    "graft.report_markdown": "graft.reports.markdown",
    "graft.resume": "graft.runs.resume",
    "graft.rounds": "graft.plugins.rounds",
    "graft.run_report": "graft.reports.writer",
    "graft.rundir": "graft.records.rundir",
    "graft.scaffold": "graft.authoring.scaffold",
    "graft.schema": "graft.spec.schema",
    "graft.schema_command": "graft.commands.schema",
    "graft.schema_keywords": "graft.spec.schema_keywords",
    "graft.serving": "graft.finished.serving",
    "graft.specfile": "graft.spec.specfile",
    "graft.stage_commands": "graft.commands.stage",
    "graft.stagearrays": "graft.finished.stagearrays",
    "graft.stagedata": "graft.planning.stagedata",
    "graft.stagelogs": "graft.runs.stagelogs",
    "graft.stages": "graft.runs.stages",
    "graft.stagespec": "graft.finished.stagespec",
    "graft.store_folders": "graft.features.folders",
    "graft.streamcheck": "graft.data.streamcheck",
    "graft.summary": "graft.reports.summary",
    "graft.table": "graft.base.table",
    "graft.tfbanners": "graft.base.tfbanners",
    "graft.training": "graft.runs.training",
    "graft.typewords": "graft.spec.typewords",
    "graft.verify": "graft.runs.verify",
    "graft.weights": "graft.model.weights",
    "graft.workers": "graft.runs.workers",
    "graft.yamlfile": "graft.spec.yamlfile",
}


class _MovedLoader:
    """An ``importlib.abc.Loader`` (by its methods: importing ``importlib.abc`` costs every start-up)."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec):
        module = importlib.import_module(self.new)
        self.spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self.spec  # the import system set the old name's spec on the module it returned
        warnings.warn(
            f"{self.old} moved to {self.new} in keras-graft 0.2; import it from there "
            f"(the old path goes away in 0.3)",
            DeprecationWarning,
            stacklevel=2,
        )


class _MovedFinder:
    """An ``importlib.abc.MetaPathFinder`` (by its method)."""

    def find_spec(self, fullname, path=None, target=None):
        new = MOVED.get(fullname)
        if new is None:
            return None
        import importlib.util

        loader = _MovedLoader(fullname, new)
        return importlib.util.spec_from_loader(fullname, loader)  # type: ignore[arg-type]  # a Loader by its methods


def install() -> None:
    """Make the old paths importable (once per process)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
