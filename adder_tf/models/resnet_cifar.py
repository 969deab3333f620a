"""ResNet-{8,14,20,32,44,56} for small images (He et al. 2016, section 4.2).

3x3 conv 16 stem, three stages of BasicBlocks (16, 32, 64 channels, stride 2
at stages 2 and 3), global pool, classifier. Depth = 6n + 2.
"""
import keras

from adder_tf.models.blocks import Taps, assemble, basic_block, classifier, stem

DEPTHS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32,
          "resnet44": 44, "resnet56": 56}


def resnet_cifar(arch, flavour, input_shape, num_classes, sync_bn=False,
                 stride2_padding="symmetric", classifier_head="dense"):
    """stride2_padding: "symmetric" (PyTorch padding=1, the reference) or TF's "same";
    classifier_head: "dense" or "conv_bn" (the reference ANN-20's 1x1 conv + BatchNorm)."""
    blocks_per_stage = (DEPTHS[arch] - 2) // 6
    inputs = keras.Input(shape=input_shape, name="image")
    taps = Taps()
    x = stem(inputs, 16, sync_bn=sync_bn, flavour=flavour)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(1, blocks_per_stage + 1):
            stride = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, filters, stride, flavour,
                            f"stage{stage}_block{block}", taps, sync_bn, stride2_padding)
    logits = classifier(x, num_classes, classifier_head, sync_bn)
    return assemble(inputs, logits, taps, f"{arch}_{flavour}")
