"""Datasets for training and evaluation: `load_dataset(name, batch_size, ...)`.

See docs/data.md for where each dataset's files go and the recipes used.
"""
from adder_tf.data.datasets import DATASETS, Data, Split, load_dataset, load_split

__all__ = ["DATASETS", "Data", "Split", "load_dataset", "load_split"]
