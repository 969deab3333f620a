"""Whole PKKD steps with the teacher Gaussian's mean |z| replaced by a stand-in of
the cost a fused one-pass op would have (|mean z|: one read, no abs pass; the
value is wrong, only the time matters), against the current steps, 9 pairs a
run, order alternated."""
import statistics, time
import paths  # noqa: F401  (the repository and bench/ on sys.path)
from adder_bench import make_distill_step, _block
from adder_tf.layers import kernels as K
from keras import ops
orig = K.GaussianKernel.sigma
def cheap(self, z):   # same pass count as a fused |z| sum (one read); wrong value, for timing only
    scale = ops.maximum(ops.abs(K.batch_mean(z)), 1e-12)
    return self.width(ops.sqrt(scale))
fa = make_distill_step(128, "pkkd")
_block(fa())
K.GaussianKernel.sigma = cheap
fb = make_distill_step(128, "pkkd")
_block(fb())
K.GaussianKernel.sigma = orig
for f in (fa, fb):
    for _ in range(2): _block(f())
for rep in range(3):
    r = []
    for i in range(9):
        order = (fa, fb) if i % 2 else (fb, fa)
        t = {}
        for f in order:
            t0 = time.perf_counter(); _block(f()); t[f] = time.perf_counter() - t0
        r.append(t[fb] / t[fa])
    print("one-pass |z| mean / current: %.3f" % statistics.median(r), flush=True)
