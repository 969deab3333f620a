"""VGG-small for CIFAR (HWGQ, Cai et al. 2017; LQ-Nets; the AdderNet/PKKD tables).

    conv 128 (stem, real conv) - 128 - pool - 256 - 256 - pool - 512 - 512 - pool
    - flatten (512 * 4 * 4 at 32x32) - dense num_classes

Every window layer is followed by BatchNorm and ReLU (identity in the binary
flavour, see blocks.activation); the 2x2 max pools sit between a window
layer and its BatchNorm. The first layer and the single dense classifier keep
their multiplications in every flavour. Taps: the five intermediate window
layers' raw (pre-BatchNorm) outputs.
"""
import keras
from keras import layers

from adder_tf.models import registry
from adder_tf.models.blocks import Taps, activation, assemble, batch_norm, stem, window_layer

WIDTHS = (128, 128, 256, 256, 512, 512)   # the first is the stem
POOL_AFTER = (1, 3, 5)                    # indices into WIDTHS


def vgg_small(arch, flavour, input_shape, num_classes, sync_bn=False):
    inputs = keras.Input(shape=input_shape, name="image")
    taps = Taps()
    x = stem(inputs, WIDTHS[0], sync_bn=sync_bn, flavour=flavour)
    for i, filters in enumerate(WIDTHS[1:], start=1):
        x = taps.add(window_layer(flavour, filters, 3, 1, f"conv{i}")(x))
        # Pool before BatchNorm (XNOR-Net's order), in every flavour so they
        # stay identical. For ReLU nets this changes little (max-pool commutes
        # with BN + ReLU where BN's scale is positive; BN's statistics are
        # then those of the pooled map); a 1-bit net needs it, since a
        # max-pool after BN would leave the next sign almost always +1.
        if i in POOL_AFTER:
            x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = activation(flavour, f"relu{i}")(batch_norm(f"bn{i}", sync_bn)(x))
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(num_classes, name="classifier")(x)
    return assemble(inputs, logits, taps, f"{arch}_{flavour}")


registry.register("vgg_small", vgg_small)
