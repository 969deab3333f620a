"""--validation_examples: hyper-parameters are chosen on held-out training images, never on
the test split."""
import numpy as np
import pytest
from PIL import Image

from adder_tf.data import load_dataset
from adder_tf.data.folder import load_folder


def images_of(data, split):
    """The split's images with the run's normalisation undone (each run has its own), as
    digits' 17 grey levels."""
    x = np.concatenate([x.numpy() for x, _ in split])
    return np.rint((x * np.asarray(data.std) + np.asarray(data.mean)) * 16).astype(np.int8)


def test_digits_validation_is_held_out_training_images_disjoint_from_training():
    data = load_dataset("digits", 64, seed=0, augment=False, validation_examples=100,
                        train_examples=500)
    val, train = images_of(data, data.test), images_of(data, data.train)
    assert data.test_examples == 100 and data.train_examples == 500
    full = load_dataset("digits", 64, seed=0, augment=False)
    test, all_train = images_of(full, full.test), images_of(full, full.train)
    def rows(a):
        return {r.tobytes() for r in a.reshape(len(a), -1)}
    assert rows(val) <= rows(all_train)          # taken from the training split
    assert not rows(val) & rows(train)           # never trained on
    assert not rows(val) & rows(test)            # and not the test split
    labels = np.concatenate([y.numpy() for _, y in data.test])
    assert np.bincount(labels, minlength=10).tolist() == [10] * 10   # class-balanced


def test_folder_validation_holds_out_the_last_files_of_each_class(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for split, n in (("train", 6), ("test", 2)):
        for k in ("a", "b"):
            (tmp_path / split / k).mkdir(parents=True)
            for i in range(n):
                pixels[split, k, i] = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels[split, k, i]).save(tmp_path / split / k / f"{i}.png")
    arrays = load_folder(str(tmp_path), train_examples=4, validation_examples=4)
    held = [pixels["train", k, i] for k in "ab" for i in (4, 5)]      # the last two of each class
    trained = [pixels["train", k, i] for k in "ab" for i in (0, 1)]   # the first two
    np.testing.assert_array_equal(arrays.x_test, np.stack(held))
    np.testing.assert_array_equal(arrays.x_train, np.stack(trained))
    assert arrays.y_test.tolist() == [0, 0, 1, 1]
