"""Per-image augmentation and normalisation, all stateless.

Every random op takes an explicit seed tensor of shape [2] so that a
pipeline built with a fixed seed produces the same images on every run,
whatever the number of parallel map calls; the seeds themselves come from
`tf.data.Dataset.random` (see `pipeline.py`), which gives a new stream each
epoch. Images here are float32 HWC in [0, 1] (before `normalize`), except
the ImageNet functions, which take the encoded JPEG so that only the crop
is decoded.
"""
from __future__ import annotations

import tensorflow as tf

IMAGENET_SIZE = 224
IMAGENET_RESIZE = 256


def to_unit_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 0..255 -> float32 0..1; float images are taken as already scaled."""
    if image.dtype == tf.uint8:
        return tf.cast(image, tf.float32) / 255.0
    return tf.cast(image, tf.float32)


def normalize(image: tf.Tensor, mean, std) -> tf.Tensor:
    """Per-channel (x - mean) / std, after augmentation so padding stays black."""
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (image - mean) / std


def pad_and_crop(image: tf.Tensor, pad: int, seed: tf.Tensor) -> tf.Tensor:
    """Zero-pad `pad` pixels on each side, then crop back to the original size.

    This is the CIFAR recipe (pad 4, crop 32): a random shift of up to `pad`
    pixels with black borders, as torchvision's RandomCrop(padding=pad).
    """
    if pad <= 0:
        return image
    shape = tf.shape(image)
    padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
    return tf.image.stateless_random_crop(padded, shape, seed=seed)


def random_flip(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Mirror left-right with probability 1/2 (only for mirror-symmetric classes)."""
    return tf.image.stateless_random_flip_left_right(image, seed=seed)


def random_resized_crop_jpeg(
    encoded: tf.Tensor,
    seed: tf.Tensor,
    size: int = IMAGENET_SIZE,
    scale=(0.08, 1.0),
    ratio=(3.0 / 4.0, 4.0 / 3.0),
) -> tf.Tensor:
    """He et al. / torchvision RandomResizedCrop on an encoded JPEG.

    Samples a window covering `scale` of the area with aspect ratio in
    `ratio`, decodes only that window and resizes it to size x size. When no
    window is found in 10 attempts the whole image is used. Returns float32
    in [0, 1].
    """
    shape = tf.image.extract_jpeg_shape(encoded)
    begin, window, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
        seed=seed,
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=scale,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    offset_y, offset_x, _ = tf.unstack(begin)
    height, width, _ = tf.unstack(window)
    crop = tf.image.decode_and_crop_jpeg(
        encoded, tf.stack([offset_y, offset_x, height, width]), channels=3
    )
    crop = tf.image.resize(crop, [size, size], method="bilinear", antialias=True)
    return tf.clip_by_value(crop / 255.0, 0.0, 1.0)


def resize_and_center_crop_jpeg(
    encoded: tf.Tensor, size: int = IMAGENET_SIZE, resize: int = IMAGENET_RESIZE
) -> tf.Tensor:
    """ImageNet evaluation: shorter side to `resize`, then the central size x size."""
    image = tf.image.decode_jpeg(encoded, channels=3)
    return resize_and_center_crop(image, size, resize)


def resize_and_center_crop(
    image: tf.Tensor, size: int = IMAGENET_SIZE, resize: int = IMAGENET_RESIZE
) -> tf.Tensor:
    """Shorter side to `resize` (aspect kept), central size x size, float [0, 1]."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    factor = float(resize) / tf.reduce_min(shape)
    new_hw = tf.cast(tf.round(shape * factor), tf.int32)
    new_hw = tf.maximum(new_hw, size)
    resized = tf.image.resize(image, new_hw, method="bilinear", antialias=True)
    top = (new_hw[0] - size) // 2
    left = (new_hw[1] - size) // 2
    crop = tf.image.crop_to_bounding_box(resized, top, left, size, size)
    return tf.clip_by_value(crop / 255.0, 0.0, 1.0)
