"""ResNet-18 and ResNet-50 for ImageNet (He et al. 2016, Table 1).

7x7/2 conv 64 stem + BN + ReLU + 3x3/2 max pool; four stages (64, 128, 256,
512 base widths, stride 2 at the first block of stages 2-4) of BasicBlocks
[2, 2, 2, 2] (ResNet-18) or Bottlenecks [3, 4, 6, 3] (ResNet-50, expansion
4); projection shortcuts (1x1 + BN) where the shape changes; global average
pool and a dense classifier.

The bottleneck puts its stride on the 3x3 layer, as torchvision and the
AdderNet reference ResNet-50 do ("ResNet v1.5"); the original Caffe model
strided the first 1x1 (`resnet_imagenet(..., stride_in_1x1=True)`, not
registered: 3.86G instead of 4.09G multiply-accumulates, see
docs/opcount.md). The stem conv and the classifier keep their
multiplications in every flavour; the projections use the flavour's window
layer, as in the AdderNet reference. Taps: every window layer of every
block (two per BasicBlock, three per Bottleneck), not the projections.
"""
import keras
from keras import layers

from adder_tf.models import registry
from adder_tf.models.blocks import (Taps, activation, assemble, basic_block, batch_norm, classifier,
                                    stem, window_layer)

LAYOUTS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet50": ("bottleneck", (3, 4, 6, 3))}
WIDTHS = (64, 128, 256, 512)
EXPANSION = 4


def bottleneck_block(x, filters, stride, flavour, name, taps, sync_bn=False,
                     stride_in_1x1=False):
    """1x1 (filters) - 3x3 (filters) - 1x1 (4 * filters); the three are tapped.

    The stride is on the 3x3 (v1.5), or on the first 1x1 with stride_in_1x1
    (the original Caffe ResNet-50, v1).
    """
    out = filters * EXPANSION
    s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
    y = taps.add(window_layer(flavour, filters, 1, s1, f"{name}_conv1")(x))
    y = activation(flavour, f"{name}_relu1")(batch_norm(f"{name}_bn1", sync_bn)(y))
    y = taps.add(window_layer(flavour, filters, 3, s3, f"{name}_conv2")(y))
    y = activation(flavour, f"{name}_relu2")(batch_norm(f"{name}_bn2", sync_bn)(y))
    y = taps.add(window_layer(flavour, out, 1, 1, f"{name}_conv3")(y))
    y = batch_norm(f"{name}_bn3", sync_bn)(y)
    shortcut = x
    if stride != 1 or x.shape[-1] != out:
        shortcut = window_layer(flavour, out, 1, stride, f"{name}_proj")(x)
        shortcut = batch_norm(f"{name}_proj_bn", sync_bn)(shortcut)
    return activation(flavour, f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


def resnet_imagenet(arch, flavour, input_shape, num_classes, sync_bn=False,
                    stride_in_1x1=False):
    """The registered builder; stride_in_1x1=True gives the v1 bottleneck."""
    kind, blocks = LAYOUTS[arch]
    if kind == "basic":
        block_fn = basic_block
    else:
        def block_fn(*args):
            return bottleneck_block(*args, stride_in_1x1=stride_in_1x1)
    inputs = keras.Input(shape=input_shape, name="image")
    taps = Taps()
    x = stem(inputs, 64, sync_bn=sync_bn, kernel_size=7, strides=2, flavour=flavour)
    x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    for stage, (filters, count) in enumerate(zip(WIDTHS, blocks), start=1):
        for block in range(1, count + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = block_fn(x, filters, stride, flavour, f"stage{stage}_block{block}", taps, sync_bn)
    return assemble(inputs, classifier(x, num_classes), taps, f"{arch}_{flavour}")


for _arch in LAYOUTS:
    registry.register(_arch, resnet_imagenet)
