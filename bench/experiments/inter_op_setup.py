"""Shared set-up of step_ops.py and inter_op_pairs.py: the repository and bench/
on the path, and `--inter_op N` applied to TensorFlow before any op runs
(0: TensorFlow's default)."""
import argparse

import paths  # noqa: F401  (the repository and bench/ on sys.path)


def inter_op_from_argv():
    """The --inter_op value, already set on TensorFlow when non-zero."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--inter_op", type=int, default=0)
    inter_op = parser.parse_args().inter_op
    import tensorflow as tf
    if inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    return inter_op
