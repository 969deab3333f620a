"""What a finished run leaves for others: SavedModels and full Keras models.

export/student and export/teacher are inference SavedModels (`serve`: images
-> logits) that load with plain TensorFlow, without this package: they are
traced on the plain-TF adder path so they hold standard ops only. They also
carry `serve_taps` (logits and the distillation taps), which is what lets a
later run use an exported CNN as a fixed teacher. student.keras and
teacher.keras keep the full tapped Keras models.
"""
import os

import keras
import tensorflow as tf

from adder_tf import ops as adder_ops
from adder_tf.models import inference_model


def export_saved_model(model, path):
    """SavedModel with `serve` (logits) and `serve_taps` ([logits, *taps])."""
    spec = tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32, name="images")
    infer = inference_model(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    with adder_ops.use_backend("reference"):
        archive.add_endpoint("serve", lambda x: infer(x, training=False), input_signature=[spec])
        archive.add_endpoint("serve_taps", lambda x: model(x, training=False),
                             input_signature=[spec])
        archive.write_out(path, verbose=False)


def export_run(trainer, model_dir):
    nets = {"student": trainer.student}
    if trainer.teacher is not None and isinstance(trainer.teacher, keras.Model):
        nets["teacher"] = trainer.teacher
    for name, model in nets.items():
        if getattr(model, "is_loaded_saved_model", False):
            continue
        export_saved_model(model, os.path.join(model_dir, "export", name))
        model.save(os.path.join(model_dir, f"{name}.keras"))
