#!/usr/bin/env bash
# Rebuilds the domain-randomised model (docs/robustness.md) from the first shipped model:
# trains on fresh domain-randomised simulations made while training (never the same cutout
# twice), validating on a fixed simulated set, then measures it on the in-domain test set and
# the stress suite. About 90 minutes on 2 CPU cores.
#
# Usage: scripts/train_randomised_model.sh [OUT] [EVAL_DIR]
#   OUT defaults to models/lens-detector-randomised.lensmodel; EVAL_DIR (default ./data/robustness, ~1 GB)
#   holds the test sets. Stopped midway? Run it again with RESUME=1: training continues from
#   OUT's resume file (written after every epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-models/lens-detector-randomised.lensmodel}
eval_dir=${2:-data/robustness}
bin=target/release/lens-inspect
cargo build --release
resume=()
if [[ "${RESUME:-0}" == 1 ]]; then resume=(--resume); fi
first=models/lens-detector.lensmodel   # stage 1: scripts/train_shipped_model.sh rebuilds it
$bin train --simulate --look randomised --workers 1 --val-n 2000 --out "$out" --init "$first" \
  --epochs 16 --steps-per-epoch 500 --batch 32 --lr 5e-4 --cosine-lr \
  --seed 15 --patience 100 "${resume[@]}" \
  --note "stage 2: fine-tuned from the first shipped model on fresh randomised simulations (seed 15); validation: 2000 randomised cutouts (seed 1000015)"
# Held-out measurement: the in-domain test set and every stress set (fresh seeds).
$bin evaluate-suite --model "$out" --dir "$eval_dir" --n 2000 --seed 2026 --card
