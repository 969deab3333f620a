#!/usr/bin/env bash
# What each part of PKKD does, on one protocol (docs/pkkd_protocol.md): ResNet-14 on a
# class-balanced 5,000-image CIFAR-10 subset, 12 epochs, every weight chosen on held-out
# training images, every method under one loss convention.
#
#   experiments/pkkd_protocol.sh CIFAR10_DIR [OUT] [RESULTS]
#
# Phases, in this order (a run whose results.json exists is skipped, so an interrupted
# protocol resumes; after each run its small files are copied to RESULTS):
#   select  KD's alpha, NST's beta, PKKD's alpha = beta, each over GRID, seed 0,
#           SELECT_EPOCHS epochs, scored on VALIDATION held-out training images (never the
#           test split); each method then uses its own best weight.
#   main    CNN, ANN, KD, NST, PKKD (and PKKD with the earlier mean-distance Laplace width),
#           seeds 0 and 1, scored on the whole test split.
#   table1  PKKD's feature losses raw / conv1x1 / kernel / kernel_conv1x1, fixed teacher
#           (that seed's CNN run) and progressive, seeds 0 and 1 (table1:S: seed S only).
#   seed2   the main comparison's third seed.
#   table3  PKKD at every weight of GRID, seeds 0 and 1 (how the best weight moves with
#           the schedule: the paper's alpha = beta = 10 was chosen for 400 epochs).
# Knobs (environment): ARCH (resnet14), EPOCHS (12), SELECT_EPOCHS (4), TRAIN_EXAMPLES
# (5000), VALIDATION (2000), GRID ("1 10"), BATCH (128), VALIDATION_FREQ (3), PHASES.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:?usage: experiments/pkkd_protocol.sh CIFAR10_DIR [OUT] [RESULTS]}
OUT=${2:-runs/pkkd_protocol}
RESULTS=${3:-results/pkkd_protocol}
GRID=${GRID:-1 10}
COMMON=(--dataset=folder "--data_dir=$DATA" "--arch=${ARCH:-resnet14}"
        "--train_examples=${TRAIN_EXAMPLES:-5000}" "--batch_size=${BATCH:-128}"
        --lr=0.1 --weight_decay=5e-4 --momentum=0.9 --eta=0.2 --verbose=2)
mkdir -p "$OUT" "$RESULTS"
git rev-parse HEAD > "$RESULTS/code_commit.txt" 2>/dev/null || true

run() {  # run NAME [flags...]: train into OUT/NAME, copy its small files to RESULTS/NAME
  local name=$1
  shift
  if [[ ! -f "$OUT/$name/results.json" ]]; then
    echo "== $name ($(date -u +%H:%M))"
    python train/main.py "${COMMON[@]}" "--model_dir=$OUT/$name" "$@"
  fi
  mkdir -p "$RESULTS/$name"
  for f in results.json history.csv feature_health_start.json feature_health_epochs.jsonl; do
    [[ -f "$OUT/$name/$f" ]] && cp "$OUT/$name/$f" "$RESULTS/$name/$f"
  done
  return 0
}

best() {  # best METHOD: the weight of GRID whose selection run scored highest on validation
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
for w in $GRID; do
  run "select/pkkd_w$w" "${SELECT[@]}" --method=pkkd "--alpha=$w" "--beta=$w"
  run "select/kd_w$w" "${SELECT[@]}" --method=kd "--alpha=$w"
  run "select/nst_w$w" "${SELECT[@]}" --method=mmd "--beta=$w"
done
PKKD=$(best pkkd); KD=$(best kd); NST=$(best nst)
echo "chosen on validation: PKKD alpha = beta = $PKKD, KD alpha = $KD, NST beta = $NST" \
  | tee "$RESULTS/select/chosen.txt"

MAIN=("--epochs=${EPOCHS:-12}" "--validation_freq=${VALIDATION_FREQ:-3}")
main_seed() {  # main_seed SEED [meanwidth]: PKKD and the ANN first, the comparison everything rests on
  local s=$1
  run "main/pkkd_seed$s" "${MAIN[@]}" "--seed=$s" --method=pkkd "--alpha=$PKKD" "--beta=$PKKD"
  run "main/ann_seed$s" "${MAIN[@]}" "--seed=$s" --method=ann
  if [[ ${2:-} == meanwidth ]]; then
    run "main/pkkd_meanwidth_seed$s" "${MAIN[@]}" "--seed=$s" --method=pkkd \
      "--alpha=$PKKD" "--beta=$PKKD" --laplace_width=mean
  fi
  run "main/cnn_seed$s" "${MAIN[@]}" "--seed=$s" --method=cnn
  run "main/kd_seed$s" "${MAIN[@]}" "--seed=$s" --method=kd "--alpha=$KD"
  run "main/nst_seed$s" "${MAIN[@]}" "--seed=$s" --method=mmd "--beta=$NST"
}
table1_seed() {  # table1_seed SEED: kernel_conv1x1 progressive is main/pkkd_seed$SEED
  local s=$1 loss
  for loss in raw conv1x1 kernel kernel_conv1x1; do
    run "table1/${loss}_fixed_seed$s" "${MAIN[@]}" "--seed=$s" --method=pkkd \
      "--alpha=$PKKD" "--beta=$PKKD" "--feature_loss=$loss" \
      --teacher=fixed "--teacher_path=$OUT/main/cnn_seed$s"
    [[ $loss == kernel_conv1x1 ]] && continue
    run "table1/${loss}_progressive_seed$s" "${MAIN[@]}" "--seed=$s" --method=pkkd \
      "--alpha=$PKKD" "--beta=$PKKD" "--feature_loss=$loss"
  done
}

for phase in ${PHASES:-main table1 seed2 table3}; do
  case $phase in
    main) for s in 0 1; do main_seed "$s" meanwidth; done ;;
    table1) for s in 0 1; do table1_seed "$s"; done ;;
    table1:[0-9]) table1_seed "${phase#table1:}" ;;
    seed2) main_seed 2 ;;
    table3)
      for s in 0 1; do
        for w in $GRID; do
          [[ $w == "$PKKD" ]] && continue   # main/pkkd_seed$s is that run
          run "table3/pkkd_w${w}_seed$s" "${MAIN[@]}" "--seed=$s" --method=pkkd \
            "--alpha=$w" "--beta=$w"
        done
      done ;;
    *) echo "unknown phase $phase" >&2; exit 2 ;;
  esac
done
echo "== protocol done ($(date -u +%H:%M))"
