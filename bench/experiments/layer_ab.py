"""One ImageNet layer shape through bench/imagenet_bench.py's layer timing (adder
against Conv2D side by side in one process, fixed rounds), for the checkout
at ROOT: `python layer_ab.py ROOT [ROUNDS]` prints the fwd+bwd batch 32 and
forward batch 1 and 32 ratios of 7x7x512 -> 512 3x3 and the process's CPU
seconds. Run it alternately on two checkouts (each with its own
ADDER_TF_CACHE) to compare them as a rough check on a loaded machine."""
import os
import sys
import time

root = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
sys.path[:0] = [root + "/bench", root]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import imagenet_bench as ib  # noqa: E402
from adder_tf.ops import adder_fast  # noqa: E402

assert adder_fast.__file__.startswith(root), adder_fast.__file__
shape = {"h": 7, "w": 7, "c_in": 512, "c_out": 512, "kernel": 3, "stride": 1, "padding": "same",
         "name": "7x7x512_512_k3s1_same", "layers": {}}
cpu0 = time.process_time()
row = ib.bench_layers([shape], ib.FULL["layer_batches"], 0.0, (rounds, rounds))[0]
print(root, {k: v["ratio"] for k, v in row.items() if isinstance(v, dict) and "ratio" in v},
      "cpu s %.1f" % (time.process_time() - cpu0), flush=True)
