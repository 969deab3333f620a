"""build_model(arch, flavour, ...): every architecture, by name.

A built model has outputs [logits, *taps]: the taps are the raw outputs of the
intermediate window layers that distillation compares. `inference_model`
gives the single-output network that is exported; it shares the weights.
"""
import keras

from adder_tf.models.blocks import FLAVOURS
from adder_tf.models.resnet_cifar import DEPTHS, resnet_cifar

_BUILDERS = {name: resnet_cifar for name in DEPTHS}


def register(name, builder):
    """Add an architecture: builder(arch, flavour, input_shape, num_classes, sync_bn)."""
    _BUILDERS[name] = builder


def architectures():
    _load_optional()
    return tuple(_BUILDERS)


def build_model(arch, flavour, input_shape, num_classes, sync_bn=False, **options):
    """options: architecture-specific (CIFAR ResNets: stride2_padding, classifier_head)."""
    _load_optional()
    if arch not in _BUILDERS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {sorted(_BUILDERS)}")
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; expected one of {FLAVOURS}")
    return _BUILDERS[arch](arch, flavour, tuple(input_shape), int(num_classes),
                           sync_bn=sync_bn, **options)


def inference_model(model):
    """The deployable network: image in, logits out, no distillation taps."""
    return keras.Model(model.inputs, model.outputs[0], name=f"{model.name}_inference")


def _load_optional():
    """Architectures defined in modules of their own register on import."""
    import importlib
    for module in ("adder_tf.models.vgg_small", "adder_tf.models.resnet_imagenet"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
