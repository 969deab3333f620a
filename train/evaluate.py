"""Score an exported SavedModel on a dataset's test split.

    python train/evaluate.py --saved_model=RUN/export/student --dataset=digits

The last line printed is a JSON object with top1, top5 and n. The model is
loaded with plain TensorFlow (its `serve` endpoint), as a deployment would.
"""
import json
import os

import cli  # noqa: F401
from absl import app, flags

from adder_tf.config import DATASETS
from adder_tf.errors import UserError

F = flags.FLAGS
flags.DEFINE_string("saved_model", "", "Folder of a SavedModel written by train/main.py (export/student).")
flags.DEFINE_string("dataset", "", f"One of {', '.join(DATASETS)}.")
flags.DEFINE_string("data_dir", "", "As for train/main.py.")
flags.DEFINE_string("data_path", "", "As for train/main.py.")
flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")
flags.DEFINE_bool("debug", False, "Show tracebacks instead of one-line errors.")


def top_k_hits(logits, labels, k):
    import tensorflow as tf
    return int(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.int32)))


def main(argv):
    cli.import_tensorflow_quietly()
    if not F.saved_model or not os.path.exists(os.path.join(F.saved_model, "saved_model.pb")):
        raise UserError(f"--saved_model {F.saved_model!r}: not a SavedModel folder")
    if F.dataset not in DATASETS:
        raise UserError(f"--dataset={F.dataset!r} is not one of {', '.join(DATASETS)}")
    import tensorflow as tf
    from adder_tf.data import load_dataset
    data = load_dataset(F.dataset, F.batch_size, data_dir=F.data_dir or None,
                        data_path=F.data_path or None, augment=False)
    model = tf.saved_model.load(F.saved_model)
    k = min(5, data.num_classes)
    hits1 = hits5 = n = 0
    for images, labels in data.test:
        logits = model.serve(tf.cast(images, tf.float32))
        labels = tf.cast(labels, tf.int32)
        hits1 += top_k_hits(logits, labels, 1)
        hits5 += top_k_hits(logits, labels, k)
        n += int(labels.shape[0])
    print(json.dumps({"top1": hits1 / n, "top5": hits5 / n, "n": n}))


if __name__ == "__main__":
    app.run(lambda argv: cli.run_main(main, argv, lambda: F.debug), flags_parser=cli.parse_flags)
