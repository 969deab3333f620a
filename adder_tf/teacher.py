"""Load a trained CNN to serve as a fixed teacher (Table 1's "fixed teacher").

Accepted: a `.keras` file written by a run (teacher.keras, or student.keras of
a `--method=cnn` run), a run's model_dir (either of those inside), or an
exported SavedModel folder with the `serve_taps` endpoint.
"""
import json
import os

import keras

from adder_tf import _keras_internals as internals
from adder_tf.errors import UserError
from adder_tf.export import LOGITS_KEY
from adder_tf.layers.adder import AdderConv2D


def load_teacher(path, arch, data):
    model = _load(path)
    expected = tuple(data.input_shape)
    got = tuple(model.inputs[0].shape[1:])
    if got != expected:
        raise UserError(f"--teacher_path {path}: teacher takes images of shape {got}, "
                        f"the dataset has {expected}")
    classes = model.outputs[0].shape[-1]
    if classes != data.num_classes:
        raise UserError(f"--teacher_path {path}: teacher predicts {classes} classes, "
                        f"the dataset has {data.num_classes}")
    if any(isinstance(layer, AdderConv2D) for layer in internals.flatten_layers(model)):
        raise UserError(f"--teacher_path {path}: this network has adder layers; "
                        "the teacher must be a CNN (train one with --method=cnn)")
    model.trainable = False
    return model


def _load(path):
    if os.path.isdir(path):
        for name in ("teacher.keras", "student.keras"):
            candidate = os.path.join(path, name)
            if os.path.exists(candidate) and (name == "teacher.keras" or _is_cnn_run(path)):
                return _load_keras(candidate)
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return _load_saved_model(path)
        raise UserError(f"--teacher_path {path}: no teacher.keras, CNN run or SavedModel in this folder")
    if path.endswith(".keras"):
        return _load_keras(path)
    raise UserError(f"--teacher_path {path}: expected a .keras file, a run folder or a SavedModel folder")


def _is_cnn_run(folder):
    try:
        with open(os.path.join(folder, "results.json")) as f:
            return json.load(f).get("method") == "cnn"
    except (OSError, ValueError):
        return False


def _load_keras(path):
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # a broken or foreign file: say which, not where it broke
        raise UserError(f"--teacher_path {path}: cannot load this Keras file ({type(e).__name__})")


def _load_saved_model(path):
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(path)
    except Exception as e:
        raise UserError(f"--teacher_path {path}: cannot load this SavedModel ({type(e).__name__})")
    if not hasattr(loaded, "serve_taps"):
        raise UserError(f"--teacher_path {path}: this SavedModel has no 'serve_taps' endpoint "
                        "(export it with adder_tf, or pass a .keras file)")
    function = loaded.serve_taps.concrete_functions[0]
    spec = function.structured_input_signature[0][0]
    if not isinstance(function.structured_outputs, dict) or LOGITS_KEY not in function.structured_outputs:
        raise UserError(f"--teacher_path {path}: its 'serve_taps' endpoint does not return the "
                        "named taps of this version (re-export it, or pass its .keras file)")
    inputs = keras.Input(shape=spec.shape[1:], name="image")
    outputs = keras.layers.TFSMLayer(path, call_endpoint="serve_taps", trainable=False)(inputs)
    # Each tap becomes a layer named as in the network it came from, on the
    # path to the logits, so that taps pair up by name as with any model.
    taps = [keras.layers.Identity(name=name)(tensor)
            for name, tensor in outputs.items() if name != LOGITS_KEY]
    logits = FirstInput(name="logits")([outputs[LOGITS_KEY], *taps])
    model = keras.Model(inputs, logits, name="saved_model_teacher")
    model.is_loaded_saved_model = True
    return model


class FirstInput(keras.layers.Layer):
    """Passes its first input through; the others only stay in the graph."""

    def call(self, inputs):
        return inputs[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]
