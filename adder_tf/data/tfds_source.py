"""Reading prepared TensorFlow Datasets, without ever downloading.

Training must work on machines with no network, and a download that starts
inside a training job (or fails there with a long traceback) is worse than
a clear instruction. So a dataset that is not prepared under the data
directory raises a one-line `UserError` carrying the command that prepares
it; nothing here calls `download_and_prepare`.
"""
from __future__ import annotations

import os

import tensorflow as tf

from adder_tf.errors import UserError

IMAGENET = "imagenet2012"


def default_data_dir() -> str:
    """Where TFDS looks when no data_dir is given ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets"))


def prepare_command(name: str, data_dir: str | None) -> str:
    """How to put `name` under `data_dir`, as one line.

    The Python form is given rather than `tfds build` because the `tfds`
    command fails to start in TFDS 4.9.10 without apache-beam installed.
    """
    d = os.path.expanduser(data_dir) if data_dir else default_data_dir()
    python = (
        f"python -c \"import tensorflow_datasets as tfds; "
        f"tfds.builder('{name}', data_dir={d!r}).download_and_prepare()\""
    )
    if name == IMAGENET:
        manual = os.path.join(d, "downloads", "manual")
        return (
            f"put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (from image-net.org) "
            f"in {manual} (the manual_dir) and run: {python}"
        )
    command = (
        f"run on a machine with internet: {python} "
        f"(or copy a prepared {os.path.join(d, name)} folder there)"
    )
    return command + _ALTERNATIVES.get(name, "")


# Ways to skip TFDS altogether, for files a user may already have.
_ALTERNATIVES = {
    "cifar10": ", or point --data_dir at a folder holding cifar-10-batches-py or cifar-10-python.tar.gz",
    "cifar100": ", or point --data_dir at a folder holding cifar-100-python or cifar-100-python.tar.gz",
    "mnist": ", or pass --data_path=mnist.npz (the Keras file, ~/.keras/datasets/mnist.npz)",
}


def load(name: str, split: str, data_dir: str | None, *, shuffle_files: bool = False,
         seed: int | None = None, decode_images: bool = True):
    """(dataset of (image, int32 label), examples, num_classes) for one split.

    `shuffle_files` interleaves the record files in a seeded order (large
    datasets, where a full-dataset shuffle buffer is impossible).
    `decode_images=False` yields the encoded JPEG bytes, so that ImageNet
    training can decode only its random crop.
    """
    import tensorflow_datasets as tfds

    if data_dir is not None:
        data_dir = os.path.expanduser(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # registry or data_dir problems: one line, not a traceback
        raise UserError(f"cannot open TFDS dataset {name} in {data_dir or default_data_dir()}: "
                        f"{' '.join(str(e).split())[:200]}") from None
    decoders = None if decode_images else {"image": tfds.decode.SkipDecoding()}
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    try:
        ds = builder.as_dataset(
            split=split,
            as_supervised=True,
            shuffle_files=shuffle_files,
            read_config=read_config,
            decoders=decoders,
        )
    except AssertionError:
        # TFDS signals "not prepared" with an AssertionError from as_dataset.
        where = os.path.join(data_dir or default_data_dir(), name)
        raise UserError(
            f"{name} is not prepared in {where}; {prepare_command(name, data_dir)}"
        ) from None
    except (ValueError, KeyError) as e:
        raise UserError(f"TFDS dataset {name}: cannot read split {split!r} "
                        f"({' '.join(str(e).split())[:200]})") from None
    examples = int(ds.cardinality().numpy())
    if examples < 0:  # unknown cardinality: ask the metadata
        examples = int(builder.info.splits[split].num_examples)
    if examples == 0:
        raise UserError(f"TFDS dataset {name}: split {split!r} in {builder.data_dir} is empty")
    num_classes = int(builder.info.features["label"].num_classes)
    ds = ds.map(lambda x, y: (x, tf.cast(y, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE)
    return ds, examples, num_classes
