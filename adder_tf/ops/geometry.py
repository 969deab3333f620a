"""Output sizes and padding of a 2-D window op, with TensorFlow's conventions.

Every adder path (reference, fast) shares these so that "same"/"valid" mean
exactly what they mean for `tf.nn.conv2d`.
"""


def normalize_padding(padding):
    p = str(padding).lower()
    if p not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return p


def output_size(size, k, stride, padding):
    if padding == "same":
        return -(-size // stride)
    return (size - k) // stride + 1


def pad_amounts(size, k, stride, padding):
    """(before, after) zero padding along one axis, as TF pads for SAME."""
    if padding == "valid":
        return 0, 0
    out = output_size(size, k, stride, padding)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2
