#!/usr/bin/env bash
# Builds OUT (default /tmp/kernels_ab): this checkout's adder kernels against those of OLD_COMMIT
# (renamed into namespace adder_old), see kernels_ab.cc.
set -euo pipefail
old=${1:?usage: bench/experiments/kernels_ab.sh OLD_COMMIT [OUT]}
out=${2:-/tmp/kernels_ab}
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
git show "$old:adder_tf/ops/cc/adder_kernels.cc" |
  sed 's/namespace adder_tf/namespace adder_old/; s/"adder_kernels.h"/"old_kernels.h"/' > "$dir/old_kernels.cc"
git show "$old:adder_tf/ops/cc/adder_kernels.h" |
  sed 's/namespace adder_tf/namespace adder_old/; s/ADDER_TF_ADDER_KERNELS_H_/ADDER_OLD_H_/g' > "$dir/old_kernels.h"
g++ -O3 -march=native -ffp-contract=fast -std=c++17 -pthread -I"$dir" -Iadder_tf/ops/cc \
  bench/experiments/kernels_ab.cc adder_tf/ops/cc/adder_kernels.cc "$dir/old_kernels.cc" -o "$out"
echo "built $out (new: this checkout, old: $old)"
