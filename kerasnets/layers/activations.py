"""Hard sigmoid / hard swish as MobileNetV3 (Howard et al., "Searching for
MobileNetV3", ICCV 2019, arXiv:1905.02244, Sec. 5.2) defines them:
relu6(x + 3) / 6 and x * relu6(x + 3) / 6.

Keras 3 already has both (``hard_sigmoid`` = clip(x/6 + 0.5, 0, 1), the same
function; ``hard_silu``/``hard_swish``), so these are Keras' own, re-exported
under the paper's names (``kerasnets.layers.hard_sigmoid``,
``kerasnets.layers.hard_swish``; serialized as "hard_sigmoid" / "hard_silu");
legacy tf.keras' x/5 + 0.5 is *not* this function.

Args (both):
    x: input tensor.

Example:
    >>> x = keras.ops.convert_to_tensor([-4.0, -1.5, 0.0, 1.5, 4.0])
    >>> kerasnets.layers.hard_sigmoid(x)  # [0, 0.25, 0.5, 0.75, 1]
    >>> kerasnets.layers.hard_swish(x)  # [0, -0.375, 0, 1.125, 4]
    >>> keras.layers.Activation(kerasnets.layers.hard_swish)  # as a layer
"""

import keras

hard_sigmoid = keras.activations.hard_sigmoid
hard_swish = keras.activations.hard_silu
