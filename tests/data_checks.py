"""What the adder_tf.data tests share: a dataset's batches as arrays, images back in
their range, and the one-line error check."""
import numpy as np


def batches(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def unnormalize(x, data):
    return x * np.asarray(data.std, np.float32) + np.asarray(data.mean, np.float32)


def assert_one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert str(n) in msg, (n, msg)
