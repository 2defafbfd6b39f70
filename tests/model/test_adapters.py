"""Low-rank adapters at the level of weights, on every layer kind they adapt (``graft.model.adapters``).

Each kind is built in a one-layer Keras model (Keras 2 and 3), adapted, trained for real for a few steps and
merged: the adapted model starts from exactly the base's outputs (B is zero), the base weights
stay bitwise unchanged while only the adapter moves, the merged kernel is ``W + (alpha/r)·A·B``
with an update of rank at most r, and the merged model is a plain Keras model that loads in
safe mode.  Keras 3's own ``enable_lora`` (Dense, Conv) is compared with ours on the same A and B.
"""

from __future__ import annotations

import numpy as np
import pytest

from graft.base.backend import import_keras, keras_major
from graft.model import adapters
from graft.model.adapterfile import AdapterFile, AdapterFileError, read_adapters, save_adapters
from graft.plugins.layers import Adapter, LayerInfo

KINDS = {  # kind -> (make the layer, one sample's shape)
    "Dense": (lambda keras: keras.layers.Dense(6, name="dense"), (5,)),
    "Conv1D": (lambda keras: keras.layers.Conv1D(6, 3, name="conv1d"), (10, 4)),
    "Conv2D": (lambda keras: keras.layers.Conv2D(6, 3, name="conv2d"), (7, 7, 3)),
    "GRU": (lambda keras: keras.layers.GRU(8, name="gru"), (6, 5)),
    "LSTM": (lambda keras: keras.layers.LSTM(8, return_sequences=True, name="lstm"), (6, 5)),
}


def one_layer_model(kind: str):
    keras = import_keras()
    keras.utils.set_random_seed(1)
    make, shape = KINDS[kind]
    inputs = keras.Input(shape)
    layer = make(keras)
    model = keras.Model(inputs, layer(inputs))
    x = np.random.default_rng(0).random((32, *shape), dtype=np.float32)
    return keras, model, layer, x


def train_steps(keras, model, x, target, steps: int = 3) -> None:
    """A few real optimizer steps on every trainable weight of ``model`` (eagerly: no tracing to pay)."""
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(0.05)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - target))
        weights = model.trainable_weights
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))


def info_of(layer) -> LayerInfo:
    return LayerInfo(layer.name, "extractor", type(layer).__name__, True, False, layer)


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_adapter_starts_at_the_base_trains_alone_and_merges_into_a_plain_model(kind, tmp_path):
    keras, model, layer, x = one_layer_model(kind)
    info = info_of(layer)
    base_out = np.array(model(x))
    base = [np.array(value) for value in layer.get_weights()]
    adapters.attach(keras, info, Adapter(2, alpha=4), seed=3)

    assert np.array_equal(np.array(model(x)), base_out)  # B is zero: exactly the base's outputs
    assert {variable.name.split("/")[-1].split(":")[0] for variable in model.trainable_weights} == {
        f"lora_{kernel}_{part}" for kernel in adapters.kernels_of(kind) for part in "ab"
    }
    train_steps(keras, model, x, np.random.default_rng(1).random(base_out.shape, dtype=np.float32))

    count = adapters.base_count(layer)
    assert count == len(base)
    trained = layer.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(base, trained[:count], strict=True))  # base bitwise unchanged
    assert all(np.any(value != 0) for value in trained[count + 1::2])  # every B moved off zero
    adapted_out = np.array(model(x))

    merged = adapters.merge_all(model, (info,))[layer.name]
    assert not adapters.is_adapted(layer) and type(adapters.owner_of(layer)).__name__ != "_Kernels"
    weights = layer.get_weights()
    assert len(weights) == len(base)
    for kernel, position in merged.positions.items():
        a, b = merged.kernels[kernel]
        np.testing.assert_allclose(weights[position], base[position] + 2.0 * a @ b, rtol=1e-5, atol=1e-6)
        update = (weights[position] - base[position]).reshape(-1, weights[position].shape[-1])
        assert np.linalg.matrix_rank(update, tol=1e-5) <= 2
    untouched = set(range(len(base))) - set(merged.positions.values())
    assert all(np.array_equal(weights[n], base[n]) for n in untouched)  # the bias stays as it was
    np.testing.assert_allclose(np.array(model(x)), adapted_out, rtol=1e-4, atol=1e-5)

    model.save(tmp_path / "merged.keras")
    loaded = keras.saving.load_model(tmp_path / "merged.keras", safe_mode=True, compile=False)
    assert [type(one).__name__ for one in loaded.layers] == [type(one).__name__ for one in model.layers]
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_layer(layer.name).get_weights(), weights, strict=True))


@pytest.mark.skipif(keras_major() < 3, reason="Keras 2 has no enable_lora to compare with")
@pytest.mark.parametrize("kind", ["Dense", "Conv1D", "Conv2D"])
def test_our_update_equals_keras_enable_lora(kind):
    keras, model, layer, x = one_layer_model(kind)
    make, _shape = KINDS[kind]
    twin = make(keras)
    twin_model = keras.Model(model.inputs[0], twin(model.inputs[0]))
    twin.set_weights(layer.get_weights())
    adapters.attach(keras, info_of(layer), Adapter(3, alpha=7), seed=5)
    twin.enable_lora(3, lora_alpha=7)
    weights = layer.get_weights()  # kernel, bias, A, B
    b = np.random.default_rng(2).normal(size=weights[3].shape).astype(np.float32)  # a trained B, not zero
    layer.set_weights([*weights[:3], b])
    twin.lora_kernel_a.assign(weights[2])
    twin.lora_kernel_b.assign(b)

    np.testing.assert_allclose(np.array(layer.kernel), np.array(twin.kernel), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.array(model(x)), np.array(twin_model(x)), rtol=1e-5, atol=1e-6)


def test_the_adapters_initialisation_is_keras_own_and_seeded():
    keras, _model, layer, _x = one_layer_model("Dense")
    adapters.attach(keras, info_of(layer), Adapter(2), seed=11)
    a, b = layer.get_weights()[2:]
    assert np.array_equal(a, np.array(keras.initializers.HeUniform(seed=11)((5, 2))))
    assert not b.any()


def test_rank_below_every_kernel_dimension_and_the_parameter_count():
    keras, _model, layer, _x = one_layer_model("GRU")  # kernel 5 x 24, recurrent kernel 8 x 24
    info = info_of(layer)
    assert adapters.rank_problem(info, Adapter(4)) is None
    assert adapters.adapter_params(info, Adapter(4)) == 4 * (5 + 24) + 4 * (8 + 24)
    problem = adapters.rank_problem(info, Adapter(5))
    assert problem == ("layer 'gru': rank 5 is not below the dimensions of its kernel (5 x 24); a low-rank "
                       "adapter needs a rank of at most 4, or train the layer instead")
    keras, _model, conv, _x = one_layer_model("Conv2D")  # kernel 3 x 3 x 3 x 6: 27 rows
    assert adapters.adapter_params(info_of(conv), Adapter(2)) == 2 * (27 + 6)
    assert "rank 6 is not below" in adapters.rank_problem(info_of(conv), Adapter(6))


def test_the_adapters_file_round_trips_and_refuses_damage(tmp_path):
    keras, model, layer, _x = one_layer_model("LSTM")
    info = info_of(layer)
    adapters.attach(keras, info, Adapter(2, alpha=3), seed=1)
    merged = adapters.merge_all(model, (info,))
    path = str(tmp_path / "adapters.graft.npz")
    head = [np.ones((8, 1), np.float32), np.zeros((1,), np.float32)]
    save_adapters(path, AdapterFile("sha256:" + "0" * 64, merged, {"lstm": "LSTM"}, {"head": head}))
    back = read_adapters(path)
    assert back.base_digest == "sha256:" + "0" * 64 and back.classes == {"lstm": "LSTM"}
    got, want = back.adapters["lstm"], merged["lstm"]
    assert (got.rank, got.alpha, got.positions) == (2, 3.0, want.positions)
    for kernel in ("kernel", "recurrent_kernel"):
        assert all(np.array_equal(x, y) for x, y in zip(got.kernels[kernel], want.kernels[kernel], strict=True))
    assert all(np.array_equal(x, y) for x, y in zip(back.trained["head"], head, strict=True))

    arrays = dict(np.load(path))
    del arrays["lstm:kernel:B"]
    np.savez(tmp_path / "damaged.npz", **arrays)
    with pytest.raises(AdapterFileError, match="lists the array lstm:kernel:B it lacks"):
        read_adapters(str(tmp_path / "damaged.npz"))
    with pytest.raises(AdapterFileError, match="not found"):
        read_adapters(str(tmp_path / "missing.npz"))
