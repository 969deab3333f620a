"""Which layers a distiller compares, checked when it is built, and views that output them.

A tap is a pair (teacher layer name, student layer name); the compared
tensors are the two layers' outputs (for the library's models: the raw
window-layer outputs, before BatchNorm). Both networks are ordinary Keras
models with one output, the logits; `tapped_view` gives a model that shares
their weights and also returns the tapped layers' outputs.
"""
import keras

from adder_tf.convert import is_graph_model
from adder_tf.layers.adder import AdderConv2D
from adder_tf.layers.window import WindowLayer

WINDOW_LAYERS = (keras.layers.Conv2D, WindowLayer, keras.layers.Dense)


def check_model(model, role):
    """A built functional or Sequential keras.Model with a single output, or a ValueError."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"{role} must be a keras.Model, got {type(model).__name__}")
    if not is_graph_model(model):
        raise ValueError(f"{role} {model.name!r} has no symbolic inputs: build it as a functional "
                         "or Sequential model that starts with keras.Input(shape)")
    if len(model.outputs) != 1:
        raise ValueError(f"{role} {model.name!r} has {len(model.outputs)} outputs; give a model whose "
                         "single output is the logits (taps are chosen by layer name)")


def default_pairs(teacher, student):
    """Every AdderConv2D of the student but the network's first and last window layers,
    paired with the teacher's layer of the same name."""
    windows = [layer for layer in student.layers if isinstance(layer, WINDOW_LAYERS)]
    adders = [layer.name for layer in windows[1:-1] if isinstance(layer, AdderConv2D)]
    if not adders:
        raise ValueError(f"student {student.name!r} has no AdderConv2D between its first and last "
                         "layers to tap; choose the layers with taps=[(teacher_layer, student_layer)]")
    teacher_names = {layer.name for layer in teacher.layers}
    missing = [name for name in adders if name not in teacher_names]
    if missing:
        raise ValueError(f"teacher {teacher.name!r} has no layer named {missing[0]!r} for the "
                         f"student's adder layer of that name ({len(missing)} of {len(adders)} "
                         "unmatched); use the same layer names (adder_tf.to_adder keeps them) or "
                         "pass taps=[(teacher_layer, student_layer), ...]")
    return [(name, name) for name in adders]


def resolve_pairs(teacher, student, taps, same_shape=True):
    """The tap pairs to use, checked: every layer exists, is used once and, when
    `same_shape`, each pair's outputs have the same shape."""
    pairs = default_pairs(teacher, student) if taps is None else _as_pairs(taps)
    if not pairs:
        raise ValueError("taps is empty; pass None for the default pairs or at least one "
                         "(teacher_layer, student_layer)")
    for t_name, s_name in pairs:
        t_shape = tuple(_layer_output(teacher, t_name, "teacher").shape[1:])
        s_shape = tuple(_layer_output(student, s_name, "student").shape[1:])
        if same_shape and t_shape != s_shape:
            raise ValueError(f"tap ({t_name!r}, {s_name!r}): teacher layer {t_name!r} outputs "
                             f"{t_shape} but student layer {s_name!r} outputs {s_shape}; "
                             "the feature loss compares them element by element")
    return pairs


def tapped_view(model, names):
    """A model sharing `model`'s weights with outputs [logits, *outputs of the named layers]."""
    outputs = [model.outputs[0], *[_layer_output(model, n, "model") for n in names]]
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs   # called as the model is
    return keras.Model(inputs, outputs, name=f"{model.name}_tapped")


def _as_pairs(taps):
    pairs = []
    for tap in taps:
        if isinstance(tap, str) or len(tap) != 2 or not all(isinstance(n, str) for n in tap):
            raise ValueError(f"each tap must be a pair (teacher_layer_name, student_layer_name), "
                             f"got {tap!r}")
        pairs.append(tuple(tap))
    return pairs


def _layer_output(model, name, role):
    try:
        layer = model.get_layer(name)
    except ValueError:
        raise ValueError(f"{role} {model.name!r} has no layer named {name!r} "
                         "(taps name top-level layers)") from None
    try:
        return layer.output
    except (AttributeError, ValueError, RuntimeError):
        raise ValueError(f"layer {name!r} of {role} {model.name!r} is called more than once "
                         "(or never); it has no single output to tap") from None


def as_list(outputs):
    """A view's outputs as a list (a view without taps returns its one output bare)."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
