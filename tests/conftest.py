import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

# The compiled op picks some paths by the thread pool's size (the forward sums
# each thread's own weights only with more images than threads): two threads,
# whatever the host, so every numpy-checked case takes the path it names.
tf.config.threading.set_intra_op_parallelism_threads(2)
