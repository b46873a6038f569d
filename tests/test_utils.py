"""kerasnets.utils.count_macs: hand-counted layers and the papers' numbers."""

import warnings

import keras
import pytest
from keras import layers

import kerasnets
from kerasnets.layers import GroupConv2D, InterleavedGroupConv, SEBlock
from kerasnets.utils import count_macs, count_trainable_params, register_mac_rule


def small_model():
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(inputs)  # 16x16x8
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = layers.Conv2D(16, 1, groups=2, name="grouped")(x)  # 8 -> 16, 2 groups
    x = GroupConv2D(16, 3, groups=4, padding="valid", name="group_conv")(x)  # 14x14
    x = layers.SeparableConv2D(8, 3, strides=2, padding="same", name="sep")(x)  # 7x7
    x = SEBlock(ratio=4, name="se")(x)
    x = InterleavedGroupConv(8, primary_groups=2, name="igc")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, name="fc")(x)
    return keras.Model(inputs, outputs)


EXPECTED = {
    "conv": 16 * 16 * 8 * (3 * 3 * 3),
    "dw": 16 * 16 * 8 * 9,
    "grouped": 16 * 16 * 16 * 4,
    "group_conv": 14 * 14 * 16 * (9 * 4),
    "sep": 7 * 7 * (16 * 9) + 7 * 7 * 8 * 16,
    "se": 8 * 2 + 2 * 8,
    "igc": 7 * 7 * 8 * (9 * 4) + 7 * 7 * 8 * 2,  # primary L=2 (M=4), secondary M=4 groups of 2
    "fc": 8 * 10,
}


def test_hand_counted_layers():
    model = small_model()
    total, table = count_macs(model, per_layer=True)
    assert table == EXPECTED
    assert total == sum(EXPECTED.values())
    with_bn = count_macs(model, batch_norm=True)
    assert with_bn == total + 16 * 16 * 8
    # + BN output, + pooling input (the GAP reads 7x7x8); no activation layers.
    assert count_macs(model, elementwise=True) == with_bn + 7 * 7 * 8


def test_nested_models_and_free_input_size():
    def inner(shape):
        return keras.Sequential([keras.Input(shape), layers.Conv2D(4, 3, padding="same")])

    expected = 20 * 20 * 4 * 27 + 20 * 20 * 4 * 5  # the dense acts at every position
    inputs = keras.Input((20, 20, 3))
    nested = keras.Model(inputs, layers.Dense(5)(inner((20, 20, 3))(inputs)))
    assert count_macs(nested) == expected

    inputs = keras.Input((None, None, 3))
    free = keras.Model(inputs, layers.Dense(5)(inner((None, None, 3))(inputs)))
    assert count_macs(free) == 224 * 224 * (4 * 27 + 4 * 5)  # free size: counted at 224
    assert count_macs(free, input_shape=(20, 20, 3)) == expected
    assert count_macs(free, input_shape=(10, 10, 3)) == expected // 4


def test_unknown_weighted_layer_warns_and_rules_extend():
    class Scale(layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], shape[-1]))

        def call(self, x):
            return keras.ops.matmul(x, self.w)

    inputs = keras.Input((6,))
    model = keras.Model(inputs, Scale(name="scale")(inputs))
    with pytest.warns(UserWarning, match="scale"):
        assert count_macs(model) == 0
    register_mac_rule(Scale, lambda layer, i, o: 36)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert count_macs(model) == 36
    finally:
        from kerasnets.utils import MAC_RULES

        MAC_RULES.pop(Scale)


# Papers' multiply-adds at 224x224 (shared/REFERENCE.md section 1), within 2%.
@pytest.mark.parametrize(
    "builder, paper",
    [
        ("MobileNet", 569e6),
        ("MobileNetV2", 300e6),
        ("DenseNet121", 2.87e9),
        ("DPN92", 6.5e9),
        ("SEResNeXt50_32x4d", 4.25e9),
    ],
)
@pytest.mark.heavy
def test_papers_numbers(builder, paper):
    model = getattr(kerasnets, builder)(weights=None)
    macs = count_macs(model, input_shape=(224, 224, 3))
    print(f"{builder}: {macs / 1e6:,.1f} M MACs (paper {paper / 1e6:,.0f} M)")
    assert abs(macs / paper - 1) < 0.02
    if builder == "DenseNet121":
        # Convolutions and dense: 2.834 G (torchvision's figure); the quoted
        # 2.87 G also counts BN, ReLU and pooling elements (ptflops).
        assert abs(macs / 2.834e9 - 1) < 0.001
        full = count_macs(model, input_shape=(224, 224, 3), elementwise=True)
        print(f"DenseNet121 with element-wise ops: {full / 1e6:,.1f} M")
        assert abs(full / paper - 1) < 0.002
        assert count_trainable_params(model) == 7_978_856
    keras.backend.clear_session()
