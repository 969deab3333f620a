#!/usr/bin/env bash
# The compiled ops of OLD_COMMIT and of this checkout in one process: builds
# OLD_COMMIT's op library with its ops renamed AdderOld* (namespace adder_old)
# into DIR (default /tmp/op_ab), then runs op_ab.py, which alternates the two
# forward and input-gradient ops (and Conv2D) on 7x7x512 -> 512 3x3 call by
# call and checks their outputs bit for bit.
#   bench/experiments/op_ab.sh OLD_COMMIT [BATCH] [DIR]
set -euo pipefail
old=${1:?usage: bench/experiments/op_ab.sh OLD_COMMIT [BATCH] [DIR]}
batch=${2:-1}
dir=${3:-/tmp/op_ab}
cd "$(dirname "$0")/../.."
mkdir -p "$dir"
for f in adder_kernels.cc adder_kernels.h adder_ops.cc; do
  git show "$old:adder_tf/ops/cc/$f" | sed 's/namespace adder_tf/namespace adder_old/g; s/AdderTf/AdderOld/g' > "$dir/$f"
done
python - "$dir" <<'PY'
import subprocess, sys
import tensorflow as tf
from adder_tf.ops import build as b
d = sys.argv[1]
for c in (["g++", "-c"] + b.COMMON_FLAGS + b.KERNEL_FLAGS + b.isa_targets()[0][1] + [d + "/adder_kernels.cc", "-o", d + "/k.o"],
          ["g++", "-c"] + b.COMMON_FLAGS + b.GLUE_FLAGS + tf.sysconfig.get_compile_flags() + [d + "/adder_ops.cc", "-o", d + "/g.o"],
          ["g++", "-shared", d + "/k.o", d + "/g.o", "-o", d + "/old.so"] + tf.sysconfig.get_link_flags()):
    subprocess.run(c, check=True, capture_output=True)
PY
python bench/experiments/op_ab.py "$dir/old.so" "$batch"
