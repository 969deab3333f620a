"""What a finished run leaves for others: SavedModels and full Keras models.

export/student and export/teacher are inference SavedModels (`serve`: images
-> logits) that load with plain TensorFlow, without this package: they are
traced on the plain-TF adder path so they hold standard ops only. They also
carry `serve_taps` (a dict: "logits" and each distillation tap by layer
name), which is what lets a later run use an exported CNN as a fixed
teacher. student.keras and teacher.keras keep the Keras models.
"""
import os

import keras
import tensorflow as tf

from adder_tf import atomic_io
from adder_tf import ops as adder_ops
from adder_tf.distill.taps import as_list, tapped_view

LOGITS_KEY = "logits"


def export_saved_model(model, path, taps=()):
    """SavedModel with `serve` (logits) and `serve_taps` ({"logits", *taps})."""
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="images")
    view = tapped_view(model, list(taps))
    archive = keras.export.ExportArchive()
    archive.track(model)

    def with_taps(x):
        out = as_list(view(x, training=False))
        return {LOGITS_KEY: out[0], **dict(zip(taps, out[1:]))}

    with adder_ops.use_backend("reference"):
        archive.add_endpoint("serve", lambda x: model(x, training=False), input_signature=[spec])
        archive.add_endpoint("serve_taps", with_taps, input_signature=[spec])
        archive.write_out(path, verbose=False)


def export_run(trainer, model_dir, taps, epoch=None):
    """Exports the student and a Keras teacher of a finished run; `taps`: layer names.

    `epoch` (the epochs the run completed) names the write for atomic_io's fault hook."""
    nets = {"student": trainer.student}
    if trainer.teacher is not None and not getattr(trainer.teacher, "is_loaded_saved_model", False):
        nets["teacher"] = trainer.teacher
    for name, model in nets.items():
        # Each written beside and renamed over, so a kill leaves the old export or the new one.
        with atomic_io.atomic_dir(os.path.join(model_dir, "export", name), "export", epoch) as tmp:
            export_saved_model(model, tmp, taps)
        with atomic_io.atomic_path(os.path.join(model_dir, f"{name}.keras"), suffix=".keras") as tmp:
            model.save(tmp)
