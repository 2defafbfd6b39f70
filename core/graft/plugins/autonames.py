"""Which layer names Keras made up: names it generates for layers created without ``name=``.

Such a name (``lstm``, ``dense_3``) depends on how many layers of that class were
created before in the process, so it is not a stable address for policies and
weight transfer.  A name's shape says nothing (``gru_1`` is a fine explicit
name), so the names are recorded where Keras generates them, while a plugin's
hook runs.

A plugin that wraps a model constructor it does not control (``keras.applications``)
builds it inside ``accepting_keras_names()``: the names Keras gives there are kept and
not reported.  They are reproducible because keras-graft clears the Keras session
before every model build.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_accepting = 0  # depth of accepting_keras_names() blocks now open


@contextmanager
def accepting_keras_names() -> Iterator[None]:
    """Names Keras generates inside the block are accepted as the layers' names."""
    global _accepting
    _accepting += 1
    try:
        yield
    finally:
        _accepting -= 1


@contextmanager
def recording_auto_names(keras) -> Iterator[set[str]]:
    """Collect, into the yielded set, every layer name Keras generates inside the block."""
    names: set[str] = set()
    if int(keras.__version__.split(".")[0]) >= 3:
        with _recording_keras3(names):
            yield names
    else:
        with _recording_keras2(names):
            yield names


@contextmanager
def _recording_keras3(names: set[str]) -> Iterator[None]:
    # Operation.__init__ (the base of every Layer) calls the auto_name it imported into its module.
    from keras.src.ops import operation

    original = operation.auto_name

    def auto_name(prefix):
        name = original(prefix)
        if not _accepting:
            names.add(name)
        return name

    operation.auto_name = auto_name
    try:
        yield
    finally:
        operation.auto_name = original


@contextmanager
def _recording_keras2(names: set[str]) -> Iterator[None]:
    # Keras 2: Layer._init_set_name(None) picks backend.unique_object_name(snake-cased class name).
    from keras.src.engine.base_layer import Layer

    original = Layer.__dict__["_init_set_name"]

    def _init_set_name(self, name, *args, **kwargs):
        original(self, name, *args, **kwargs)
        if name is None and not _accepting:
            names.add(self.name)

    Layer._init_set_name = _init_set_name
    try:
        yield
    finally:
        Layer._init_set_name = original
