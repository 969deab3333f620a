#!/usr/bin/env bash
# Longer-schedule CIFAR-10 protocol: CNN / ANN / KD / NST / PKKD, 12 epochs (3x the short
# protocol), two seeds, with the distillation weights chosen on held-out training images.
#
#   experiments/longer_cifar10.sh CIFAR10_DIR [OUT]
#
# 1. Selection (seed 0, SELECT_EPOCHS epochs): PKKD's alpha = beta in {1, 10}, trained on
#    the TRAIN_EXAMPLES subset and scored on VALIDATION class-balanced images held out from
#    the training split (--validation_examples: the last images of each class, never
#    trained on); the test split is not looked at. KD's alpha and NST's beta take the same
#    value (one loss convention: every method divides by 1 + its weights).
# 2. The protocol: every method with the chosen weight, EPOCHS epochs, seeds SEEDS (all
#    methods of a seed before the next seed), scored on the whole test split; then
#    train/report.py.
# A run whose results.json exists is not run again, so an interrupted protocol resumes.
# Knobs (environment): ARCH (resnet14), EPOCHS (12), SELECT_EPOCHS (4), TRAIN_EXAMPLES
# (5000), VALIDATION (2000), SEEDS ("0 1"), BATCH (128), VALIDATION_FREQ (3).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: experiments/longer_cifar10.sh CIFAR10_DIR [OUT]}
OUT=${2:-runs/longer_cifar10}
COMMON=(--dataset=folder "--data_dir=$DATA" "--arch=${ARCH:-resnet14}"
        "--train_examples=${TRAIN_EXAMPLES:-5000}" "--batch_size=${BATCH:-128}"
        --lr=0.1 --weight_decay=5e-4 --momentum=0.9 --eta=0.2 --verbose=2)

run() {  # run DIR [flags...]
  local dir=$1
  shift
  if [[ -f "$dir/results.json" ]]; then echo "== $dir: done already"; return; fi
  echo "== $dir"
  python train/main.py "${COMMON[@]}" "--model_dir=$dir" "$@"
}

best() {  # best METHOD: the weight whose selection run scored highest on validation
  python - "$OUT/select" "$1" <<'PY'
import json, os, sys
folder, method = sys.argv[1], sys.argv[2]
scores = {}
for name in sorted(os.listdir(folder)):
    if name.startswith(method + "_w"):
        with open(os.path.join(folder, name, "results.json")) as f:
            r = json.load(f)
        assert r["scored_on"].startswith("validation"), name
        scores[name[len(method) + 2:]] = r["student"]["top1"]
print(max(scores, key=scores.get))
PY
}

SELECT=(--seed=0 "--epochs=${SELECT_EPOCHS:-4}" "--validation_examples=${VALIDATION:-2000}")
for w in 1 10; do
  run "$OUT/select/pkkd_w$w" "${SELECT[@]}" --method=pkkd "--alpha=$w" "--beta=$w"
done
PKKD=$(best pkkd); KD=$PKKD; NST=$PKKD
echo "chosen on validation: alpha = beta = $PKKD (PKKD; KD and NST use it too)"

MAIN=("--epochs=${EPOCHS:-12}" "--validation_freq=${VALIDATION_FREQ:-3}")
for seed in ${SEEDS:-0 1}; do
  run "$OUT/main/cnn_seed$seed" "${MAIN[@]}" "--seed=$seed" --method=cnn
  run "$OUT/main/ann_seed$seed" "${MAIN[@]}" "--seed=$seed" --method=ann
  run "$OUT/main/kd_seed$seed" "${MAIN[@]}" "--seed=$seed" --method=kd "--alpha=$KD"
  run "$OUT/main/nst_seed$seed" "${MAIN[@]}" "--seed=$seed" --method=mmd "--beta=$NST"
  run "$OUT/main/pkkd_seed$seed" "${MAIN[@]}" "--seed=$seed" --method=pkkd "--alpha=$PKKD" "--beta=$PKKD"
done
python train/report.py "--runs=$OUT/main" "--out=$OUT/report" --noweights
