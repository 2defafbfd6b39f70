"""keras-graft: a plugin-based model registry for transfer learning on TensorFlow/Keras.

Plugin authors need only this module: ``hookimpl`` to mark hook implementations,
``LayerInfo``/``LayerDecision``/``Adapter``/``match_layers`` for transfer policies,
``DeclaredLayer`` to say an extractor's or head's layers from its params,
``Dataset`` (arrays, ``ArrayFile`` for arrays on disk) or ``Stream``
(``tf.data``) for data sources, ``SpecProblem`` and ``graft.validators`` to report
problems at YAML paths (``Problems`` to collect several), ``check_allocation`` to
refuse sizes larger than the machine, ``accepting_keras_names`` around Keras
constructors that name layers themselves, ``GraftError`` as the base of a
plugin's own errors that keras-graft prints without a traceback, ``did_you_mean``
for the same "did you mean" hint the core gives, ``add_plan_note`` for a line
``graft plan`` shows about the extractor a plugin built.  Importing it does not import
TensorFlow.

Notebooks and scripts (``graft.finished.api``): ``load_spec``, ``plan``, ``run`` and
``load_stage`` (a ``FinishedStage``; ``run`` returns a ``RunResult``).  They load on
first use, and import TensorFlow only when they build or load a model.
"""

import importlib

from graft import _moved
from graft._version import __version__ as __version__  # the one version number
from graft.base.memory import check_allocation
from graft.base.problems import GraftError, Problems, SpecError, SpecProblem, did_you_mean
from graft.plugins.arrayfile import ArrayFile
from graft.plugins.autonames import accepting_keras_names
from graft.plugins.datasets import Dataset, Stream
from graft.plugins.hookspecs import hookimpl
from graft.plugins.layers import (
    EXTRACTOR,
    Adapter,
    DeclaredLayer,
    LayerDecision,
    LayerInfo,
    match_layers,
    match_pattern,
)
from graft.plugins.plannotes import add_plan_note
from graft.plugins.rounds import Round, Rounds

_moved.install()  # the module paths of 0.1 (graft.stages, graft.registry, ...) keep working


__all__ = [
    "EXTRACTOR",
    "Adapter",
    "ArrayFile",
    "Dataset",
    "DeclaredLayer",
    "FinishedStage",
    "GraftError",
    "LayerDecision",
    "LayerInfo",
    "Problems",
    "Round",
    "Rounds",
    "RunResult",
    "SpecError",
    "SpecProblem",
    "Stream",
    "accepting_keras_names",
    "add_plan_note",
    "check_allocation",
    "did_you_mean",
    "hookimpl",
    "load_spec",
    "load_stage",
    "match_layers",
    "match_pattern",
    "plan",
    "run",
]

_API = frozenset({"FinishedStage", "RunResult", "load_spec", "load_stage", "plan", "run"})


def __getattr__(name: str):
    """The Python API (graft.finished.api), imported on first use so that ``import graft`` stays light."""
    if name in _API:
        return getattr(importlib.import_module("graft.finished.api"), name)
    raise AttributeError(f"module 'graft' has no attribute {name!r}")
