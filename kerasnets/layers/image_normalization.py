"""Input normalisation baked into a model (``include_preprocessing=True``)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerasnets")
class ImageNormalization(keras.layers.Layer):
    """``(x[..., order] - mean) / std`` on RGB images with 0-255 pixels.

    The normalisation a set of pretrained weights was trained with, as a
    layer: a model that starts with it takes raw RGB 0-255 images (what
    ``keras.utils.load_img`` gives) and needs no ``preprocess_input``.

    Reference: the conventions of keras.applications'
    ``imagenet_utils.preprocess_input`` modes: "tf" (to [-1, 1]), "torch"
    (ImageNet mean/std on [0, 1]) and "caffe" (BGR, mean subtraction as in
    VGG, Simonyan & Zisserman, ICLR 2015, arXiv:1409.1556) are each one
    ``ImageNormalization`` with the mean/std/bgr of
    ``kerasnets.data.get_preprocessing(mode)``.

    Args:
        mean, std: three values each, on 0-255 pixels, in the model's channel
            order (after the optional RGB -> BGR flip).
        bgr: reverse the channels first (Caffe-trained weights).

    Example:
        >>> # keras.applications' "torch" mode
        >>> ImageNormalization(mean=(123.675, 116.28, 103.53),
        ...                    std=(58.395, 57.12, 57.375))
    """

    def __init__(self, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), bgr=False, **kwargs):
        super().__init__(**kwargs)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.bgr = bool(bgr)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(
                "ImageNormalization needs three means and three positive "
                f"standard deviations; received mean={mean}, std={std}."
            )

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(
                "ImageNormalization expects RGB images (3 channels last); "
                f"received input_shape={input_shape}."
            )

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.bgr:
            x = ops.flip(x, axis=-1)
        mean = ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)
        scale = ops.convert_to_tensor([1.0 / s for s in self.std], dtype=self.compute_dtype)
        return (x - mean) * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean),
                "std": list(self.std), "bgr": self.bgr}
