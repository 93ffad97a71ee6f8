#!/usr/bin/env bash
# Rebuilds the domain-randomised model (docs/robustness.md) from the first shipped model, in two
# stages, both on fresh simulations made while training (never the same cutout twice) with a
# fixed simulated validation set:
#   stage 2: 16 epochs of the randomised look (about 90 minutes on 2 CPU cores);
#   stage 3: 16 epochs of a mixture, 80 % randomised and 20 % the narrow KiDS look, so the look a
#            survey actually has is not forgotten (about 100 minutes).
# Then measures it on the in-domain test set and the stress suite, and writes that into its card.
#
# Usage: scripts/train_randomised_model.sh [OUT] [EVAL_DIR] [WORK_DIR]
#   OUT defaults to models/lens-detector-randomised.lensmodel; EVAL_DIR (default ./data/robustness,
#   ~1 GB) holds the test sets; WORK_DIR (default ./data) the stage-2 model. Stopped midway? Run
#   it again with RESUME=2 (stage 2) or RESUME=3 (stage 3): training continues from the stage's
#   resume file, written after every epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/lens-detector-randomised.lensmodel}
eval_dir=${2:-data/robustness}
work=${3:-data}
bin=target/release/lens-inspect
cargo build --release
mkdir -p "$work"
first=models/lens-detector.lensmodel   # stage 1: scripts/train_shipped_model.sh rebuilds it
stage2="$work/stage2.lensmodel"
resume2=(); resume3=()
if [[ "${RESUME:-0}" == 2 ]]; then resume2=(--resume); fi
if [[ "${RESUME:-0}" == 3 ]]; then resume3=(--resume); fi
if [[ "${RESUME:-0}" != 3 ]]; then
  $bin train --simulate --look randomised --workers 1 --val-n 2000 --out "$stage2" --init "$first" \
    --epochs 16 --steps-per-epoch 500 --batch 32 --lr 5e-4 --cosine-lr \
    --seed 15 --patience 100 "${resume2[@]}" \
    --note "stage 2: fine-tuned from the first shipped model on fresh randomised simulations (seed 15); validation: 2000 randomised cutouts (seed 1000015)"
fi
$bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$out" --init "$stage2" \
  --epochs 16 --steps-per-epoch 400 --batch 32 --lr 3e-4 --cosine-lr \
  --seed 16 --patience 100 "${resume3[@]}" \
  --note "stage 3: fine-tuned from stage 2 on fresh simulations, 80 % randomised and 20 % KiDS look (seed 16); validation: 2000 cutouts of the same mixture (seed 1000016)"
# Held-out measurement: the in-domain test set and every stress set (fresh seeds).
$bin evaluate-suite --model "$out" --dir "$eval_dir" --n 2000 --seed 2026 --card
