"""Score an exported SavedModel on a dataset's test split.

    python train/evaluate.py --saved_model=RUN/export/student --dataset=digits
    python train/evaluate.py --saved_model=RUN      # a run folder: its export/student

The last line printed is a JSON object with top1, top5 and n. The model is
loaded with plain TensorFlow (its `serve` endpoint), as a deployment would.
Given a run folder, the student's export is used (said on stderr) and the
dataset flags default to the run's own.
"""
import json
import os
import sys

import cli  # noqa: F401
from absl import app, flags

from adder_tf.config import DATASETS
from adder_tf.errors import UserError

F = flags.FLAGS
flags.DEFINE_string("saved_model", "", "A SavedModel folder written by train/main.py "
                    "(RUN/export/student), or a run folder (its export/student is used).")
flags.DEFINE_string("dataset", "", f"One of {', '.join(DATASETS)}.")
flags.DEFINE_string("data_dir", "", "As for train/main.py.")
flags.DEFINE_string("data_path", "", "As for train/main.py.")
flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")
flags.DEFINE_bool("debug", False, "Show tracebacks instead of one-line errors.")


def top_k_hits(logits, labels, k):
    import tensorflow as tf
    return int(tf.reduce_sum(tf.cast(tf.math.in_top_k(labels, logits, k), tf.int32)))


def resolve(path):
    """(SavedModel folder, the run's config or {}) for a SavedModel or a run folder."""
    if not path:
        raise UserError("--saved_model is required: a SavedModel folder or a run folder")
    if not os.path.exists(path):
        raise UserError(f"--saved_model {path}: no such file or folder")
    if os.path.isfile(path):
        kind = "a .keras file" if path.endswith(".keras") else "a file"
        raise UserError(f"--saved_model {path}: {kind}, not a SavedModel folder "
                        "(give the run folder or its export/student)")
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path, {}
    student = os.path.join(path, "export", "student")
    if os.path.exists(os.path.join(student, "saved_model.pb")):
        print(f"evaluating {student} (the run's student)", file=sys.stderr)
        try:
            with open(os.path.join(path, "results.json")) as f:
                return student, json.load(f).get("config") or {}
        except (OSError, ValueError):
            return student, {}
    raise UserError(f"--saved_model {path}: a folder with neither saved_model.pb nor "
                    "export/student (a run that has not finished?)")


def main(argv):
    saved_model, run = resolve(F.saved_model)
    dataset = F.dataset or run.get("dataset", "")
    if dataset not in DATASETS:
        raise UserError(f"--dataset={dataset!r} is not one of {', '.join(DATASETS)}")
    cli.import_tensorflow_quietly()
    import tensorflow as tf
    from adder_tf.data import load_dataset
    same = not F.dataset or F.dataset == run.get("dataset")
    data = load_dataset(dataset, F.batch_size,
                        data_dir=F.data_dir or (run.get("data_dir") if same else None) or None,
                        data_path=F.data_path or (run.get("data_path") if same else None) or None,
                        augment=False,
                        num_classes=(run.get("num_classes", 0) if same else 0))
    model = tf.saved_model.load(saved_model)
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
