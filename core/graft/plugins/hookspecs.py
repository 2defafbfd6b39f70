"""The hooks a keras-graft plugin implements: this module is the plugin author's manual.

A plugin is a module (or an object, or a class instantiated without arguments)
published under the entry-point group ``graft``.  The entry-point name is the
name a YAML spec uses: ``gru = "graft_gru"`` makes ``extractor: {plugin: gru}``
work.  Implement one or more of the hooks below, each decorated with
``@graft.hookimpl``.

Parameters.  A hook receives the ``params:`` mapping of the YAML entry that names
the plugin, already structured into the class you annotate the ``params``
argument with: an ``attrs`` class (``@attrs.frozen``).  keras-graft structures it
with its own strict converter, so a wrong type, a missing field or an unknown key
is reported with its full YAML path and line, e.g.
``model.extractor.params.layers[2].units (line 9): expected an integer, got 'x'``.
A hook without a ``params`` annotation takes no params.  Every validator of
every field runs and every problem is reported: a ``graft.SpecProblem(path,
message)`` raised in an attrs validator is relative to the field it validates
(``path=()`` is the field itself), one raised from the hook itself is relative to
``params``.  ``graft.validators.existing_file`` checks a path relative to the
spec's folder at ``graft validate`` time.

TensorFlow.  Import ``keras`` inside the hook functions, never at module top:
``graft validate`` loads every plugin to check params and must not pay for a
TensorFlow import.  ``graft plugins`` names a plugin whose loading imported
TensorFlow or Keras.

Errors.  keras-graft calls exactly the plugin a spec entry names, and:

- a ``graft.SpecProblem(path, message)`` raised from any hook (or from a params
  validator) is reported at that entry's YAML path, its ``params``, then
  ``path``, with the line: raised by the ``build_head`` of head ``trend`` as
  ``SpecProblem(("units",), "too large")`` it reads
  ``model.heads.trend.params.units (line 12): too large`` (or
  ``stages[1].heads.trend...`` for a stage's own heads).  ``path=()`` points at
  ``params`` itself; use it for a problem with an argument such as
  ``input_shape`` and name the spec key in the message (``model.input_shape``).
- any other exception becomes one error naming the plugin, its distribution
  and version, and the hook, with the exception's type and message; no
  traceback.  Set ``GRAFT_DEBUG=1`` (``graft --debug``) to keep the original
  exception chained, so that its full traceback is printed.
  ``KeyboardInterrupt`` passes through untouched.
- what a hook returns is checked before it is used (see each hook's
  ``:return:``); a wrong answer is an error naming the plugin and the hook.

Names.  Every layer a hook creates carries an explicit ``name=``: a layer Keras
had to name itself (``lstm``, ``dense_2``) is refused at plan time, naming the
plugin and the layer, because such names change with what was built before.
Input layers are exempt.  To wrap a constructor that names layers itself
(``keras.applications``), call it inside
``graft.accepting_keras_names()``.

Starter specs.  ``graft new-spec`` writes a commented spec from the params
classes of the plugins it is given.  A params class may give the values of its
required fields (and any it wants to show) as ``STARTER: ClassVar[dict]`` (raw
params, as YAML holds them; a data source's targets name the head ``label``),
and the shape of one sample it works with as ``STARTER_INPUT_SHAPE:
ClassVar[tuple]``; without them ``graft new-spec`` refuses the plugin, naming
its required fields.

Saved models.  ``graft run`` saves each stage's model as ``model.keras``;
``graft evaluate``, ``predict`` and ``export`` load it back in Keras's safe mode,
which runs no code from the file.  So a ``Lambda`` layer is refused at plan
time, naming the plugin and the layer: build from Keras's own layers, or write
a custom layer class with ``get_config``, registered with
``@keras.saving.register_keras_serializable``.  The conformance checks load
the saved model back in safe mode.

Layer names at ``graft validate``.  An extractor or head plugin that knows its
layers from its params alone implements ``extractor_layers`` or ``head_layers``
(optional): ``graft validate`` then checks every layer name and pattern the
spec gives (a policy's params, ``init.rename``) without TensorFlow, with the
same "did you mean" that ``graft plan`` gives.  It does so by calling the
stage's ``transfer_policy`` on the declared layers, whose ``LayerInfo.layer``
is then None; a policy that needs the Keras layer fails there and the stage's
names are left to ``graft plan``.  Where a plugin cannot say, ``graft
validate`` says in one line that layer names were not checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from graft.plugins.datasets import Dataset, Stream
    from graft.plugins.layers import DeclaredLayer, LayerDecision, LayerInfo
    from graft.plugins.rounds import Rounds

hookspec = pluggy.HookspecMarker("graft")
hookimpl = pluggy.HookimplMarker("graft")


@hookspec
def build_extractor(params: Any, input_shape: tuple[int, ...], base_dir: str) -> Any:
    """Build the feature-extraction part of the model.

    Called once per model build (``graft plan``, and at the start of every stage
    of ``graft run``), after the random seed is set.

    :param params: the ``model.extractor.params`` of the spec, structured into
        your annotated attrs class.
    :param input_shape: the shape of one sample, without the batch dimension,
        from ``model.input_shape``.
    :param base_dir: the folder of the YAML spec; resolve relative paths in
        your params (e.g. a weights file) against it.  Like every hook
        argument, take it only if you need it.
    :return: a ``keras.Model`` (functional or ``Sequential``) that maps an input
        of ``input_shape`` to a feature tensor.  Every layer in it must carry an
        explicit, stable name, normally one the YAML gives (``gru_1``,
        ``gru_2``, ...), because freeze policies and weight transfer address
        layers by name.  Names must not clash with head layer names.  Nested
        models are allowed; their leaf layers are what policies see.  Anything
        else returned is an error naming the plugin.
    """


@hookspec
def build_head(params: Any, features: Any, name: str) -> Any:
    """Build one output head on top of the extractor's features.

    Called once per head in ``model.heads`` (or in a stage's ``heads``), in
    order, after ``build_extractor``.

    :param params: the head's ``params``, structured into your annotated class.
    :param features: the symbolic feature tensor the extractor produced.
    :param name: the head's name, the key under ``heads:`` in the YAML.
    :return: the head's output: one symbolic tensor (not a list, not None),
        computed from ``features``.  The layer producing it must be named
        exactly ``name`` (that names the model output, its loss and its
        targets); other layers of the head must be named ``{name}_...``.
        Anything else is an error naming the plugin.
    """


@hookspec
def extractor_layers(params: Any, input_shape: tuple[int, ...]) -> Sequence[DeclaredLayer] | None:
    """Say, without TensorFlow, which layers ``build_extractor`` will build (optional).

    Called by ``graft validate`` (never imports Keras here), so that a typo in a layer
    name in a policy or in ``init.rename`` is found before anything is built.

    :param params: the ``model.extractor.params``, structured into the class that
        ``build_extractor`` annotates.
    :param input_shape: the shape of one sample, from ``model.input_shape``.
    :return: one ``graft.DeclaredLayer(name, class_name, has_weights=True,
        is_batch_norm=False, can_train=True)`` per leaf layer of the extractor, in
        model order, input layers left out: exactly what ``build_extractor`` builds
        (``graft.testing.check_extractor_plugin`` checks that they are equal); or
        None when the params alone do not tell (then the names are checked by
        ``graft plan``, as without this hook).
    """


@hookspec
def head_layers(params: Any, name: str) -> Sequence[DeclaredLayer] | None:
    """Say, without TensorFlow, which layers ``build_head`` will build for head ``name`` (optional).

    :param params: the head's ``params``, structured into the class that
        ``build_head`` annotates.
    :param name: the head's name, the key under ``heads:``.
    :return: one ``graft.DeclaredLayer`` per layer of the head, in model order,
        the last named ``name``; or None when the params alone do not tell.
        ``graft.testing.check_head_plugin`` checks them against the built head.
    """


@hookspec
def transfer_policy(
    params: Any, layers: tuple[LayerInfo, ...]
) -> dict[str, LayerDecision] | Rounds:
    """Decide, for one stage, which layers train and where their weights start.

    Called once per stage when the stage is planned (``graft plan``) and before
    it trains (``graft run``), on the model built for that stage.

    :param params: the stage's ``policy.params``, structured into your
        annotated class.
    :param layers: every layer of the model that a policy can address, in model
        order (extractor layers first, input side first, then each head's
        layers).  A ``graft.LayerInfo`` says the layer's name, whether it
        belongs to the extractor or to a head, its Keras class, whether it has
        weights and whether it is a BatchNormalization layer.  Use
        ``graft.match_layers`` to resolve name patterns from your params.
    :return: a mapping from every layer name in ``layers`` to a
        ``graft.LayerDecision(trainable, init, lr_scale=1.0)``; ``init`` is ``"load"`` (start
        from the stage's ``init`` source; if the stage has none the layer starts
        new) or ``"reinit"`` (start from a fresh initialisation);
        ``lr_scale`` (keyword, default 1.0) multiplies the stage's learning
        rate for a trained layer (discriminative fine-tuning; 1.0 for a frozen
        layer).  ``adapt=graft.Adapter(rank, alpha=None)`` (keyword, with
        ``trainable=False``) trains a low-rank adapter (LoRA) beside the layer's
        frozen kernels instead of the layer itself: only ``Dense``, ``Conv1D``,
        ``Conv2D``, ``GRU`` and ``LSTM`` layers, at a rank below both dimensions of
        each kernel (``graft plan`` checks it); the stage publishes the merged
        weights ``W + (alpha / rank)·A·B``.  A layer missing from the mapping is an
        error.  keras-graft recompiles the model after applying the decisions and checks, after training, that every
        frozen layer is bitwise unchanged.  To train the stage in rounds
        (progressive fine-tuning), return a ``graft.Rounds`` of such mappings
        instead: each round trains for the stage's ``epochs`` from where the
        previous one ended, until the validation loss stops improving; the best
        round's weights are kept.
    """


@hookspec
def load_data(params: Any, base_dir: str) -> Dataset | Stream:
    """Load the data a stage trains on.

    Called by ``graft run`` for each stage before any stage trains, so that
    every data problem is reported before work starts.

    :param params: the stage's ``data.params``, structured into your annotated
        class.
    :param base_dir: the folder of the YAML spec; resolve relative paths
        against it.
    :return: a ``graft.Dataset`` (arrays: numpy arrays in memory, or
        ``graft.ArrayFile`` rows on disk) with the training inputs and one
        target array per head name, and optionally validation arrays; or a
        ``graft.Stream`` of ``tf.data`` pipelines for data read while training
        (import TensorFlow inside this hook, never at module level).  Anything
        else is an error naming the plugin.  Do not batch, shuffle or
        prefetch: the core does it, the same way for every source.
        keras-graft checks shapes, class ids, NaN/inf and emptiness against the
        model before training (streams on their first batches).  To weigh
        samples in a head's loss, give ``Dataset(sample_weight={head: array})``
        or yield ``(inputs, targets, {head: weight})`` from a stream.
    """
