#!/usr/bin/env bash
# Rebuilds the shipped model models/lens-detector.lensmodel from nothing but this program:
# simulate training and validation data in the narrow KiDS look, then train. About 25 minutes
# on 2 CPU cores. scripts/train_randomised_model.sh starts from it (docs/robustness.md).
# Usage: scripts/train_shipped_model.sh [DATA_DIR]   (DATA_DIR defaults to ./data, ~3 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
bin=target/release/lens-inspect
cargo build --release
$bin simulate --look kids --n 16000 --out "$data/train" --seed 1001
$bin simulate --look kids --n 2000 --out "$data/val" --seed 1002
$bin train --data "$data/train" --val-data "$data/val" --out models/lens-detector.lensmodel \
  --arch lens-detector --epochs 12 --steps-per-epoch 250 --batch 32 --lr 1e-3 --seed 7 --patience 4 \
  --note "data: lens-inspect simulate --n 16000 --seed 1001 (train), --n 2000 --seed 1002 (val)"
# Held-out check on a fresh seed:
$bin simulate --look kids --n 2000 --out "$data/test" --seed 1003
$bin evaluate --model models/lens-detector.lensmodel --data "$data/test"
