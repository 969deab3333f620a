"""adder_tf.data's augmentation: pad-and-crop, flips and ImageNet crops."""
import numpy as np
import tensorflow as tf

from adder_tf.data import augment as aug


# ---------------------------------------------------------------- augmentation


def test_pad_and_crop_keeps_shape_and_shifts():
    image = tf.reshape(tf.range(5 * 7 * 2, dtype=tf.float32), (5, 7, 2))
    seen = set()
    for s in range(40):
        out = aug.pad_and_crop(image, 2, tf.constant([s, 0], tf.int64)).numpy()
        assert out.shape == (5, 7, 2)
        # a shift: the top-left nonzero-padded content is a window of the padded image
        padded = np.pad(image.numpy(), ((2, 2), (2, 2), (0, 0)))
        hits = [(dy, dx) for dy in range(5) for dx in range(5)
                if np.array_equal(padded[dy:dy + 5, dx:dx + 7], out)]
        assert hits
        seen.add(hits[0])
    assert len(seen) > 5
    np.testing.assert_array_equal(aug.pad_and_crop(image, 0, tf.constant([0, 0], tf.int64)), image)


def test_random_flip_is_identity_or_mirror():
    image = tf.random.stateless_uniform((4, 6, 3), seed=[1, 2])
    outcomes = []
    for s in range(20):
        out = aug.random_flip(image, tf.constant([s, 1], tf.int64)).numpy()
        if np.array_equal(out, image.numpy()):
            outcomes.append(0)
        else:
            np.testing.assert_array_equal(out, image.numpy()[:, ::-1])
            outcomes.append(1)
    assert 0 < sum(outcomes) < 20


def test_imagenet_crops_from_jpeg():
    image = tf.cast(tf.random.stateless_uniform((300, 400, 3), seed=[3, 4], maxval=255), tf.uint8)
    encoded = tf.io.encode_jpeg(image)
    crops = [aug.random_resized_crop_jpeg(encoded, tf.constant([s, 0], tf.int64)).numpy() for s in range(3)]
    for c in crops:
        assert c.shape == (224, 224, 3) and c.min() >= 0 and c.max() <= 1
    assert not np.array_equal(crops[0], crops[1])
    a = aug.resize_and_center_crop_jpeg(encoded).numpy()
    b = aug.resize_and_center_crop_jpeg(encoded).numpy()
    assert a.shape == (224, 224, 3)
    np.testing.assert_array_equal(a, b)
    tall = aug.resize_and_center_crop(tf.zeros((500, 230, 3), tf.uint8))
    assert tall.shape == (224, 224, 3)
