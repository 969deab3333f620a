"""to_adder: the adder twin of a Keras CNN, layer for layer, names kept.

The ANNs of the papers are "homogeneous": every convolution becomes an
adder layer except the first (it sees raw pixels) and the classifier. The
twin's layers keep their names, so a distiller pairs the CNN's layers with
the ANN's by name; its weights are fresh (an adder filter is a template to
match, not a CNN filter to reuse). BatchNormalization right after an
adder layer gets the library's momentum 0.9 and epsilon 1e-5: with Keras's
0.99 its moving averages trail the fast-moving adder outputs so far that
inference-mode accuracy can sit at chance while training accuracy is high.
"""
import keras

from adder_tf import _keras_internals as internals
from adder_tf.layers.adder import AdderConv2D
from adder_tf.models.adder_model import AdderModel
from adder_tf.models.blocks import BN_EPSILON, BN_MOMENTUM

_CONV_ARGS = ("filters", "kernel_size", "strides", "padding", "data_format", "activation",
              "use_bias", "bias_initializer", "kernel_regularizer", "bias_regularizer",
              "activity_regularizer", "kernel_constraint", "bias_constraint", "name",
              "trainable", "dtype")


def to_adder(model, *, keep=(), convert_first=False, convert_last=False, name=None):
    """A new `AdderModel` with the structure of `model`, its Conv2D layers as AdderConv2D.

    Its `fit` re-estimates BatchNorm statistics on the training data before
    every validation and at the end, so what it predicts after `fit`
    describes the trained network (`adder_tf.models.AdderModel`).

    keep: names of Conv2D layers to leave multiplicative.
    convert_first: also convert the network's first Conv2D (off by default,
      as in the papers).
    convert_last: also convert a Conv2D that is the network's classifier (the
      last layer with weights, e.g. a 1x1 conv before global pooling); off by
      default: the papers keep the first and the last layer multiplicative.
    A Conv2D with a fused activation is refused by name: its adder twin
    outputs -|x - f| <= 0 before the activation, so ReLU (or any activation
    applied to the raw distance) gives a dead layer; put the activation after
    a BatchNormalization instead, or keep the layer.
    Works on functional and Sequential models (not subclassed ones).
    """
    if not is_graph_model(model):
        raise ValueError(f"to_adder needs a functional or Sequential keras.Model, got "
                         f"{type(model).__name__}")
    convs = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]
    names = {layer.name for layer in model.layers}
    unknown = [n for n in keep if n not in names]
    if unknown:
        raise ValueError(f"keep names no layer of {model.name!r}: {unknown[0]!r}")
    if not convs:
        raise ValueError(f"model {model.name!r} has no Conv2D layer to convert")
    converted = {layer.name for layer in convs[(0 if convert_first else 1):]} - set(keep)
    classifier = _classifier(model)
    if classifier is not None and not convert_last:
        converted.discard(classifier.name)
    _refuse_dead_layers(model, convs, converted)
    after_adder = batchnorms_after(model, converted)

    def clone(layer):
        if layer.name in converted:
            return _adder_from_conv(layer)
        if layer.name in after_adder:
            config = layer.get_config()
            config.update(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
            return type(layer).from_config(config)
        return type(layer).from_config(layer.get_config())

    # Fresh inputs named as the original's, so that every layer name is kept.
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=internals.producer(t).name)
              for t in model.inputs]
    twin = keras.models.clone_model(model, clone_function=clone,
                                    input_tensors=inputs if len(inputs) > 1 else inputs[0])
    return AdderModel(inputs if len(inputs) > 1 else inputs[0],
                      twin.outputs if len(twin.outputs) > 1 else twin.outputs[0],
                      name=name or twin.name)


_LIVE_ON_NEGATIVES = ("linear", "leaky_relu")   # activations that keep -|x - f| <= 0 alive


def _refuse_dead_layers(model, convs, converted):
    """A converted layer outputs -|x - f| <= 0: an activation applied to that directly
    (fused, or the next layer, with no normalization between) outputs a constant."""
    for layer in convs:
        name = keras.activations.serialize(layer.activation) if layer.activation else "linear"
        if layer.name in converted and name not in _LIVE_ON_NEGATIVES:
            _dead(layer.name, f"has a fused activation {name!r}")
    for layer in model.layers:
        if _activation_name(layer) in (None, *_LIVE_ON_NEGATIVES):
            continue
        for tensor in internals.inbound_tensors(layer):
            source = internals.producer(tensor).name
            if source in converted:
                _dead(source, f"is followed by {type(layer).__name__} {layer.name!r} with no "
                              "normalization between")


def _activation_name(layer):
    """The activation a layer applies on its own (None for any other layer)."""
    if isinstance(layer, keras.layers.ReLU):
        return "leaky_relu" if float(layer.negative_slope) > 0 else "relu"
    if isinstance(layer, keras.layers.Activation):
        return keras.activations.serialize(layer.activation)
    if isinstance(layer, (keras.layers.ELU, keras.layers.Softmax)):
        return type(layer).__name__.lower()
    return None


def _dead(name, why):
    raise ValueError(f"Conv2D {name!r} {why}: as an adder layer it outputs -|x - f| <= 0, which "
                     "that activation turns into a constant (a dead layer); put a "
                     f"BatchNormalization before the activation, or keep it with keep=[{name!r}]")


def _classifier(model):
    """The model's last layer with weights when it is a Conv2D (a convolutional classifier)."""
    weighted = [layer for layer in model.layers
                if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    last = weighted[-1] if weighted else None
    return last if type(last) is keras.layers.Conv2D else None


def is_graph_model(model):
    """A keras.Model with symbolic inputs and outputs: functional, or a built Sequential."""
    if not isinstance(model, keras.Model):
        return False
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _adder_from_conv(conv):
    config = conv.get_config()
    for arg, default in (("dilation_rate", (1, 1)), ("groups", 1)):
        value = config.get(arg, default)
        if value not in (default, 1, [1, 1]):
            raise ValueError(f"Conv2D {conv.name!r} has {arg}={value!r}, which AdderConv2D does "
                             f"not support; keep it with keep=[{conv.name!r}]")
    return AdderConv2D(**{k: config[k] for k in _CONV_ARGS if k in config})


def batchnorms_after(model, names):
    """Names of BatchNormalization layers whose input is the output of a layer in `names`."""
    found = set()
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if any(internals.producer(t).name in names for t in internals.inbound_tensors(layer)):
            found.add(layer.name)
    return found
