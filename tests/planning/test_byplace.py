"""A Keras file's layers paired with the model's by class and place (``graft.planning.byplace``), without
TensorFlow; the end-to-end case (a real hand-built Keras model, graft plan, the proposal pasted, a run) is
in ``tests/model/test_init_model.py``."""

from __future__ import annotations

from graft.model.initsource import SourceLayer
from graft.planning.byplace import ModelLayer, keras_auto_name, pair_by_place
from graft.spec.renaming import rename_layers

FIRST, NEXT = [(3, 12), (4, 12), (2, 12)], [(4, 12), (4, 12), (2, 12)]
MODEL = [ModelLayer("gru_1", "GRU", FIRST), ModelLayer("gru_2", "GRU", NEXT), ModelLayer("gru_3", "GRU", NEXT),
         ModelLayer("level", "Dense", [(4, 1), (1,)]), ModelLayer("trend", "Dense", [(4, 3), (3,)])]


def keras_named_file(grus: int = 3) -> list[SourceLayer]:
    """A model built without names: gru, gru_1, ...; dense, dense_1."""
    names = ["gru", *(f"gru_{n}" for n in range(1, grus))]
    return [SourceLayer(name, name, FIRST if n == 0 else NEXT, "GRU") for n, name in enumerate(names)] + [
        SourceLayer("dense", "dense", [(4, 1), (1,)], "Dense"),
        SourceLayer("dense_1", "dense_1", [(4, 5), (5,)], "Dense"),
    ]


def test_keras_auto_names_as_keras_makes_them():
    assert [keras_auto_name(name) for name in ("GRU", "Conv1D", "BatchNormalization", "LSTM", "DepthwiseConv2D")] == [
        "gru", "conv1d", "batch_normalization", "lstm", "depthwise_conv2d"
    ]


def test_keras_names_shifted_by_one_are_a_collision_and_the_rename_loads_each_by_place():
    found = pair_by_place(keras_named_file(), MODEL)
    assert found is not None
    assert found.rename == {"gru": "gru_1", "gru_1": "gru_2", "gru_2": "gru_3", "dense": "level"}
    assert found.reinit == {"trend": "its weight shapes (4, 3), (3,) differ from those of the file's 'dense_1', "
                                     "(4, 5), (5,)"}
    assert found.collision is not None and "the file's 'gru_1' is its 2nd GRU layer, this model's 'gru_1' its 1st" \
        in found.collision
    # the proposal is what graft.model.initsource applies: every loaded layer finds its file layer
    renamed, problems = rename_layers([layer.name for layer in keras_named_file()], found.rename)
    assert not problems and {name: renamed.sources[name] for name in ("gru_1", "gru_2", "gru_3", "level")} == {
        "gru_1": [0], "gru_2": [1], "gru_3": [2], "level": [3]
    }


def test_a_file_with_more_layers_of_a_class_renames_the_leftover_out_of_the_way():
    found = pair_by_place(keras_named_file(grus=4), MODEL, fresh=["trend"])
    assert found is not None and found.reinit == {}
    assert found.rename == {"gru": "gru_1", "gru_1": "gru_2", "gru_2": "gru_3", "dense": "level",
                            "gru_3": "gru_3_unused"}  # else the file's own gru_3 would clash with gru_2 renamed


def test_a_model_with_more_layers_of_a_class_than_the_file_starts_those_fresh():
    found = pair_by_place(keras_named_file(grus=2), MODEL)
    assert found is not None
    assert found.reinit["gru_3"] == "the file has 2 GRU layers, this model's 'gru_3' is its 3rd"


def test_nothing_is_proposed_where_the_file_does_not_say_its_classes_or_names_repeat():
    unknown = [SourceLayer(layer.name, layer.where, layer.shapes, "") for layer in keras_named_file()]
    assert pair_by_place(unknown, MODEL) is None
    twice = [SourceLayer("gru_1", "first/gru_1", FIRST, "GRU"), SourceLayer("gru_1", "second/gru_1", NEXT, "GRU")]
    assert pair_by_place(twice, MODEL[:2]) is None  # one rename key would rename both: no proposal to give


def test_explicit_names_in_their_place_are_no_collision():
    file = [SourceLayer(layer.name, layer.name, layer.shapes, layer.class_name) for layer in MODEL]
    found = pair_by_place(file, MODEL)
    assert found is not None and (found.rename, found.reinit, found.collision) == ({}, {}, None)
