"""The head rewrite is the same function in float and keeps the output names."""

from __future__ import annotations

import numpy as np

from convert.rewrite import max_float_difference, split_concatenated_heads


def _model():
    import keras

    keras.utils.set_random_seed(4)
    scan = keras.Input(shape=(64, 64, 1), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=4, activation="relu")(keras.layers.Rescaling(1 / 255)(scan))
    heat = keras.layers.Conv2D(1, 1)(x)
    pooled = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling2D()(x), keras.layers.GlobalMaxPooling2D()(x)])
    both = keras.layers.Concatenate()([pooled, keras.layers.GlobalMaxPooling2D()(heat)])
    bn = keras.layers.BatchNormalization()
    features = keras.layers.Dropout(0.3)(bn(both))
    bn.set_weights([np.random.uniform(0.5, 2, 17), np.random.uniform(-1, 1, 17), np.random.uniform(-1, 1, 17),
                    np.random.uniform(0.01, 3, 17)])
    classes = keras.layers.Dense(7, activation="softmax", name="classes")(features)
    malignant = keras.layers.Dense(1, activation="sigmoid", name="malignant")(features)
    return keras.Model(scan, [classes, malignant])


def test_split_heads_is_the_same_function(records):
    from convert.quantize import prepared_images

    model = _model()
    split, changed = split_concatenated_heads(model)
    assert len(changed) == 2 and "3 branches" in changed[0]
    assert [t._keras_history[0].name for t in split.outputs] == ["classes", "malignant"]
    assert max_float_difference(model, split, prepared_images(records[:3], 64)) < 1e-5


def test_a_model_without_such_heads_is_left_alone(tiny_model_dir):
    from tiny_support import tiny_model

    model = tiny_model()
    same, changed = split_concatenated_heads(model)
    assert same is model and changed == []
