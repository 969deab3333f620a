#!/usr/bin/env bash
# Short-schedule CIFAR-10 protocol: ResNet-20, CNN / ANN (reference and TF padding) /
# KD / PKKD (default and paper-literal loss), two seeds, then the report. About an
# hour on 2 CPU cores.
#
#   experiments/short_cifar10.sh CIFAR10_DIR [OUT]
#
# CIFAR10_DIR holds train/<class>/*.{png,jpg} and test/<class>/* (the layout of
# keras.utils.image_dataset_from_directory). Every run trains on the same fixed
# class-balanced subset (--train_examples, the first 1,000 images of each class in
# file order) and is scored on the whole test split. A run whose results.json
# exists is not run again, so an interrupted protocol picks up where it stopped.
# Knobs (environment): EPOCHS (default 4), TRAIN_EXAMPLES (10000), SEEDS ("0 1"),
# BATCH (128).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: experiments/short_cifar10.sh CIFAR10_DIR [OUT]}
OUT=${2:-runs/short_cifar10}
COMMON=(--dataset=folder "--data_dir=$DATA" --arch=resnet20
        "--train_examples=${TRAIN_EXAMPLES:-10000}" "--epochs=${EPOCHS:-4}"
        "--batch_size=${BATCH:-128}" --lr=0.1 --weight_decay=5e-4 --momentum=0.9 --eta=0.2
        --verbose=2)

run() {  # run NAME SEED [flags...]
  local name=$1 seed=$2
  shift 2
  local dir="$OUT/${name}_seed$seed"
  if [[ -f "$dir/results.json" ]]; then echo "== $dir: done already"; return; fi
  echo "== $dir"
  python train/main.py "${COMMON[@]}" "--seed=$seed" "--model_dir=$dir" "$@"
}

for seed in ${SEEDS:-0 1}; do
  run cnn "$seed" --method=cnn
  run ann "$seed" --method=ann
  run ann_tfpad "$seed" --method=ann --stride2_padding=same
  run kd "$seed" --method=kd --alpha=1
  run pkkd "$seed" --method=pkkd --alpha=10 --beta=10
  run pkkd_literal "$seed" --method=pkkd --feature_norm=none --alpha=1 --beta=1e-4
done
python train/report.py "--runs=$OUT" "--out=$OUT/report" --noweights
