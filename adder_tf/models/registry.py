"""build_model(arch, flavour, ...): every architecture, by name.

A built model maps images to logits. `tap_names(model)` names the window
layers whose raw outputs distillation compares (the blocks' window layers;
not the stem, the classifier or the shortcut projections); the three
flavours of an architecture have the same layer names.
"""
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


def tap_names(model):
    """The layers a model of `build_model` is distilled at, in network order."""
    from adder_tf.models.blocks import TAPS_ATTR
    names = getattr(model, TAPS_ATTR, None)
    if names is None:
        raise ValueError(f"model {model.name!r} was not built by adder_tf.models.build_model; "
                         "name its taps yourself")
    return list(names)


def _load_optional():
    """Architectures defined in modules of their own register on import."""
    import importlib
    for module in ("adder_tf.models.vgg_small", "adder_tf.models.resnet_imagenet"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
