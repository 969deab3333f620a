"""Train a CNN, ANN or BNN, or distill a CNN into an ANN (KD, NST, PKKD).

    python train/main.py --flagfile=flags/quickstart.cfg [--flag=value ...]

A flag on the command line overrides the flagfile. Everything a run writes
goes to --model_dir; running the same command again resumes there. Ctrl-C
finishes the current step, prints what was kept and the command that
resumes, and exits 130 (a second Ctrl-C exits at once).
"""
import dataclasses
import json
import sys

import cli  # noqa: F401  (sets up the import path and logging first)
from absl import app, flags

from adder_tf import config as C
from adder_tf.errors import UserError

F = flags.FLAGS
flags.DEFINE_string("model_dir", "", "Folder for checkpoints, logs, results.json and export/.")
flags.DEFINE_string("arch", "resnet20", f"One of {', '.join(C.ARCHS)}.")
flags.DEFINE_string("method", "pkkd", f"One of {', '.join(C.METHODS)}.")
flags.DEFINE_string("teacher", "progressive", "progressive (trained alongside) or fixed (--teacher_path).")
flags.DEFINE_string("teacher_path", "", "A trained CNN: .keras file, run folder or SavedModel.")
flags.DEFINE_string("feature_loss", "kernel_conv1x1", f"One of {', '.join(C.FEATURE_LOSSES)}.")
flags.DEFINE_string("feature_norm", "standardize",
                    "standardize (default: per-channel standardized features, mean over taps, "
                    "loss divided by 1 + alpha + beta) or none (eq. 13-14 as written).")
flags.DEFINE_string("laplace_width", "spread",
                    "The student's Laplace kernel width: spread (default: centred on each channel's "
                    "mean distance, width at the distances' spread) or mean (width at the mean "
                    "distance: nearly a straight line, for the ablation).")
flags.DEFINE_string("stride2_padding", "symmetric",
                    "CIFAR ResNets: symmetric (PyTorch padding=1, the reference) or same (TF).")
flags.DEFINE_string("classifier", "dense",
                    "CIFAR ResNets: dense, or conv_bn (reference ANN-20: 1x1 conv + BatchNorm).")
flags.DEFINE_float("alpha", 1.0, "Weight of the soft-label (teacher logits) term.")
flags.DEFINE_float("beta", 1.0, "Weight of the intermediate-feature term.")
flags.DEFINE_float("temperature", 1.0, "Softmax temperature of the soft-label term.")
flags.DEFINE_string("dataset", "cifar10", f"One of {', '.join(C.DATASETS)}.")
flags.DEFINE_string("data_dir", "", "TFDS data_dir, a folder with the CIFAR python files, "
                    "or (--dataset=folder) DIR with DIR/train/<class>/* and DIR/test/<class>/*.")
flags.DEFINE_string("data_path", "", "A .npz file with x_train, y_train, x_test, y_test.")
flags.DEFINE_integer("epochs", 400, "Training epochs.")
flags.DEFINE_integer("batch_size", 256, "Global batch size (split across replicas).")
flags.DEFINE_integer("steps_per_epoch", 0, "Steps per epoch; 0 = one pass over the data.")
flags.DEFINE_integer("train_examples", 0, "Train on a fixed class-balanced subset of this many "
                     "training images (in-memory datasets); 0 = all.")
flags.DEFINE_integer("validation_freq", 1, "Validate every N epochs (the last epoch always).")
flags.DEFINE_integer("validation_examples", 0, "Hold out this many class-balanced training "
                     "images (the last of each class) and score on them instead of the test "
                     "split, for choosing hyper-parameters (in-memory datasets); 0 = test split.")
flags.DEFINE_float("lr", 0.1, "Peak learning rate (cosine decay to 0).")
flags.DEFINE_float("weight_decay", 5e-4, "L2 added to gradients (PyTorch-style, coupled).")
flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
flags.DEFINE_float("eta", 0.2, "AdderNet adaptive learning-rate coefficient (0 = off).")
flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling, augmentation).")
flags.DEFINE_string("strategy", "auto", f"One of {', '.join(C.STRATEGIES)}.")
flags.DEFINE_bool("sync_bn", False, "Synchronise BatchNorm statistics across replicas.")
flags.DEFINE_float("worker_timeout", C.Config.worker_timeout, "--strategy=multi_worker: a "
                   "worker whose peer is gone (its process dead or frozen: no heartbeat) this "
                   "many seconds stops with one line.")
flags.DEFINE_float("collective_timeout", C.Config.collective_timeout, "--strategy=multi_worker: "
                   "a worker that waits this many seconds in one collective for a peer that is "
                   "alive but stuck stops with one line. It must exceed the longest time one "
                   "worker can run ahead of another (a slow step, an epoch's end, a loaded host).")
flags.DEFINE_bool("augment", True, "Training-set augmentation.")
flags.DEFINE_integer("bn_reestimation_steps", -1,
                     "Training batches that re-estimate the student's BatchNorm statistics before "
                     "each validation and the final evaluation; -1: 20 for adder students, 0 else.")
flags.DEFINE_alias("bn_recalibration_steps", "bn_reestimation_steps")   # its former name
flags.DEFINE_bool("flip", None, "Random horizontal flips in training (--flip / --noflip); default: "
                  "on for CIFAR, ImageNet, folder and colour npz, off for digits, MNIST, grayscale npz.")
flags.DEFINE_integer("num_classes", 0, "npz only: the class count, when some classes are "
                     "absent from the data on purpose (default: max label + 1, all present).")
flags.DEFINE_integer("verbose", None, "Progress output: 0 silent, 1 Keras's progress bar, 2 one "
                     "line per epoch. Default: 1 when stdout is a terminal, 2 otherwise (a log "
                     "file gets one line per epoch, not a bar redrawn every step).")
flags.DEFINE_bool("jit_compile", False, "Compile the whole training step with XLA. The adder "
                  "layers then take the portable path's XLA form (the compiled CPU op cannot "
                  "be in an XLA cluster): for GPUs; on a CPU the default is faster.")
flags.DEFINE_bool("debug", False, "Show tracebacks instead of one-line errors.")


def config_from_flags():
    names = {f.name for f in dataclasses.fields(C.Config)}
    values = {name: F[name].value for name in names}
    if values["verbose"] is None:
        values["verbose"] = default_verbosity()
    return C.Config(**values)


def default_verbosity():
    """A progress bar for a person at a terminal; one line per epoch for a log file or pipe."""
    try:
        return 1 if sys.stdout.isatty() else 2
    except (AttributeError, ValueError):   # no stdout, or a closed one
        return 2


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags look like --name=value)")
    config = config_from_flags().validate()
    cli.import_tensorflow_quietly()
    from adder_tf.experiment import train  # heavy imports only after validation
    results = train(config)
    summary = {k: results[k] for k in ("method", "arch", "dataset", "epochs_completed",
                                       "resumed_from_epoch", "student") if k in results}
    if "teacher" in results:
        summary["teacher"] = results["teacher"]
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(lambda argv: cli.run_main(main, argv, lambda: F.debug), flags_parser=cli.parse_flags)
