"""Hard sigmoid / hard swish as MobileNetV3 (Howard et al., ICCV 2019) defines
them: relu6(x + 3) / 6 and x * relu6(x + 3) / 6.

Keras 3 already has both (``hard_sigmoid`` = clip(x/6 + 0.5, 0, 1), the same
function; ``hard_silu``/``hard_swish``), so these are Keras' own, re-exported
under the paper's names; legacy tf.keras' x/5 + 0.5 is *not* this function.
"""

import keras

hard_sigmoid = keras.activations.hard_sigmoid
hard_swish = keras.activations.hard_silu
