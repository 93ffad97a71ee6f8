#!/usr/bin/env bash
# Rebuilds the shipped model from nothing but this program, in seventeen stages (docs/robustness.md):
#   stage 1: the narrow KiDS look, from simulated folders -> models/lens-detector-kids.lensmodel
#            (about 25 minutes on 2 CPU cores);
#   stage 2: 16 epochs on fresh domain-randomised simulations made while training, never the
#            same cutout twice (about 90 minutes) -> WORK_DIR/stage2.lensmodel;
#   stage 3: 16 epochs on a mixture, 80 % randomised and 20 % the KiDS look, so the look a survey
#            has is not forgotten (about 100 minutes) -> WORK_DIR/stage3.lensmodel;
#   stage 4: the same mixture, fresh seed, 20 epochs at a lower rate (about 2 hours)
#            -> WORK_DIR/stage4.lensmodel (its best epoch, 18, is in the repository's history as
#            models/lens-detector-stage4-run.lensmodel, commit fb0bc3f);
#   stage 5: the same mixture, seed 18, with turns and flips as the only augmentation (no
#            resampling of fresh simulations), 20 epochs at lr 1.5e-4 (about 2 hours)
#            -> WORK_DIR/stage5.lensmodel (in the repository's history). Stages 1-4 ran with the full augmentation
#            that was then the default (`--augment full`), which the script now names. The kept
#            file is stage 5's best validation epoch of all 20: epoch 19 (the run was interrupted
#            after epoch 14 and resumed with RESUME=1's `--resume`);
#   stage 6: fine-tuned from stage 5, seed 20, 12 epochs at lr 1.5e-4, a fifth of the cutouts
#            shown as one grey mix of the bands (`--colour-drop 0.2`; about 40 minutes)
#            -> WORK_DIR/stage6c.lensmodel (in docs/robustness.md: "stage 6c"; in the
#            repository's history);
#   stage 9: fine-tuned from stage 6c, seed 23, 16 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose look-alikes are built around galaxies drawn as lens galaxies are
#            (simulator version 2; about 35 minutes) -> WORK_DIR/stage9.lensmodel (in the
#            repository's history);
#   stage 11: fine-tuned from stage 9, seed 25, 16 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose lens galaxies' sizes are drawn apart from their Einstein radii
#            (simulator version 3; about 35 minutes) -> WORK_DIR/stage11.lensmodel (in the
#            repository's history, commit 66eb958);
#   stage 12: stage 11 again, seed 26, 12 epochs at lr 1e-4 (about 25 minutes)
#            -> WORK_DIR/stage12.lensmodel (in the repository's history);
#   stage 13: fine-tuned from stage 12, seed 27, 16 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose sources' Poisson noise is 1 - 100 times KiDS's per unit flux
#            (simulator version 4; about 30 minutes) -> WORK_DIR/stage13.lensmodel (in the
#            repository's history, commit 5a1aeba);
#   stage 14: fine-tuned from stage 13, seed 28, 14 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose look-alikes' companions and rings are coloured and as bright as
#            arcs (simulator version 5; about 30 minutes) -> WORK_DIR/stage14.lensmodel (kept in the
#            repository as models/lens-detector-stage14.lensmodel);
#   stage 15: fine-tuned from stage 14, seed 29, 14 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose look-alikes' companions and rings sit as far from their galaxy as
#            Einstein radii do (simulator version 6; about 40 minutes) -> WORK_DIR/stage15.lensmodel (in the
#            repository's history as models/lens-detector.lensmodel, commit 990d57b);
#   stage 17: fine-tuned from stage 15, seed 31, 14 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose ring galaxies' hosts are drawn as lens galaxies are and a fifth of
#            whose lenses have neighbouring galaxies (simulator version 7; about 40 minutes)
#            -> WORK_DIR/stage17.lensmodel (in the repository's history as
#            models/lens-detector.lensmodel, commit 15a8a45; stage 16 was a trial, not shipped);
#   stage 18: stage 17 again, seed 32, 24 epochs at lr 1.5e-4, colour drop 0.2, simulator
#            version 7 (about 70 minutes) -> WORK_DIR/stage18.lensmodel (in the repository's
#            history as models/lens-detector.lensmodel, commit 7b34093);
#   stage 19: stage 18 again, seed 33, 20 epochs at lr 1e-4, colour drop 0.2, simulator
#            version 7 (about 60 minutes) -> WORK_DIR/stage19.lensmodel (in the repository's
#            history as models/lens-detector.lensmodel, commit 5b39b21; stage 20 was a trial,
#            not shipped);
#   stage 21: fine-tuned from stage 19, seed 35, 14 epochs at lr 1.5e-4, colour drop 0.2, on
#            simulations whose field galaxies fall anywhere, 0.5 - 4 per cutout, and one band of
#            a twentieth of which is blank (simulator version 8; about 40 minutes)
#            -> WORK_DIR/stage21.lensmodel (in the repository's history as
#            models/lens-detector.lensmodel, commit 447792e);
#   stage 22: fine-tuned from stage 21, seed 36, 10 epochs at lr 1.5e-4, colour drop 0.2,
#            simulator version 8 with ring galaxies drawn 2.5 times as often among the
#            look-alikes of training batches (`--boost ring_galaxy=2.5`; about 27 minutes)
#            -> models/lens-detector.lensmodel;
# then measures it on the in-domain test set and the stress suite and writes that into its card.
# Stages 2 - 6 of the files in the repository ran on simulator version 1, stage 9 on version 2,
# stages 11 - 12 on version 3, stage 13 on version 4, stage 14 on version 5, stage 15 on version 6
# stages 17 - 19 on version 7 and stages 21 - 22 on version 8
# (docs/robustness.md); a rebuild runs every stage on the current simulator, so its intermediate
# files differ from the repository's. The current simulator is version 9 (lensed sources' sizes
# drawn apart from their configuration): stage 22's recipe on it (stage 24 in the docs) gained on
# recipe B and lost 0.006 on recipe A, so a rebuild of stage 22 today is not the shipped file,
# which stays the one trained on version 8 (commit 1567903).
#
# Usage: scripts/train_shipped_model.sh [WORK_DIR] [EVAL_DIR]
#   WORK_DIR (default ./data, ~3 GB) holds stage 1's data and stages 2 and 3's models; EVAL_DIR (default
#   ./data/robustness, ~1 GB) the test sets. Stopped midway? Run it again with START=2 ... START=6, 9, 11, 12, 13, 14, 15, 17, 18, 19, 21 or 22
#   to skip the finished stages and RESUME=1 to continue the stopped one from its resume file
#   (written after every epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-data}
eval_dir=${2:-data/robustness}
start=${START:-1}
resume=()
if [[ "${RESUME:-0}" == 1 ]]; then resume=(--resume); fi
bin=target/release/lens-inspect
cargo build --release
mkdir -p "$work"
kids=models/lens-detector-kids.lensmodel
# The shipped files of earlier stages, for a START that skips them without a run of your own:
# taken from the repository's history (the working tree keeps only stage 11's).
# from_history STAGE [COMMIT [FILE]]: the file models/lens-detector-STAGE.lensmodel (or FILE)
# at COMMIT (default: the one that still held stages 4 - 9).
shipped=fb0bc3f87075181fd3dba7671c125a2bf46b3588
from_history() {
  git show "${2:-$shipped}:${3:-models/lens-detector-$1.lensmodel}" > "$work/shipped-$1.lensmodel" && echo "$work/shipped-$1.lensmodel"
}
stage2="$work/stage2.lensmodel"
stage3="$work/stage3.lensmodel"
stage4="$work/stage4.lensmodel"
stage5="$work/stage5.lensmodel"
stage6c="$work/stage6c.lensmodel"
stage9="$work/stage9.lensmodel"
stage11="$work/stage11.lensmodel"
stage12="$work/stage12.lensmodel"
stage13="$work/stage13.lensmodel"
stage14="$work/stage14.lensmodel"
stage15="$work/stage15.lensmodel"
stage17="$work/stage17.lensmodel"
stage18="$work/stage18.lensmodel"
stage19="$work/stage19.lensmodel"
stage21="$work/stage21.lensmodel"
out=models/lens-detector.lensmodel
if (( start <= 1 )); then
  $bin simulate --look kids --n 16000 --out "$work/train" --seed 1001
  $bin simulate --look kids --n 2000 --out "$work/val" --seed 1002
  $bin train --data "$work/train" --val-data "$work/val" --out "$kids" \
    --arch lens-detector --epochs 12 --steps-per-epoch 250 --batch 32 --lr 1e-3 --seed 7 --patience 4 \
    --note "stage 1: lens-inspect simulate --look kids --n 16000 --seed 1001 (train), --n 2000 --seed 1002 (val)"
fi
if (( start <= 2 )); then
  $bin train --simulate --look randomised --workers 1 --val-n 2000 --out "$stage2" --init "$kids" \
    --epochs 16 --steps-per-epoch 500 --batch 32 --lr 5e-4 --cosine-lr --seed 15 --patience 100 --augment full \
    $( (( start == 2 )) && echo "${resume[@]}" ) \
    --note "stage 2: fine-tuned from stage 1 on fresh randomised simulations (seed 15); validation: 2000 randomised cutouts (seed 1000015)"
fi
if (( start <= 3 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage3" --init "$stage2" \
    --epochs 16 --steps-per-epoch 400 --batch 32 --lr 3e-4 --cosine-lr --seed 16 --patience 100 --augment full \
    $( (( start == 3 )) && echo "${resume[@]}" ) \
    --note "stage 3: fine-tuned from stage 2 on fresh simulations, 80 % randomised and 20 % KiDS look (seed 16); validation: 2000 cutouts of the same mixture (seed 1000016)"
fi
if (( start <= 4 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage4" --init "$stage3" \
    --epochs 20 --steps-per-epoch 400 --batch 32 --lr 2e-4 --cosine-lr --seed 17 --patience 100 --augment full \
    $( (( start == 4 )) && echo "${resume[@]}" ) \
    --note "stage 4: fine-tuned from stage 3 on fresh simulations, 80 % randomised and 20 % KiDS look (seed 17), 20 epochs at lr 2e-4; validation: 2000 cutouts of the same mixture (seed 1000017)"
fi
if (( start <= 5 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage5" --init "$stage4" \
    --epochs 20 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 18 --patience 100 --augment dihedral \
    $( (( start == 5 )) && echo "${resume[@]}" ) \
    --note "stage 5: fine-tuned from stage 4 on fresh simulations, 80 % randomised and 20 % KiDS look (seed 18), turns and flips only (--augment dihedral: fresh simulations are not resampled), 20 epochs at lr 1.5e-4; validation: 2000 cutouts of the same mixture (seed 1000018)"
fi
# START=6 without a stage-5 run of your own starts from the one in the repository.
if [[ ! -f "$stage5" ]]; then stage5=$(from_history stage5); fi
if (( start <= 6 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage6c" --init "$stage5" \
    --epochs 12 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 20 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 6 )) && echo "${resume[@]}" ) \
    --note "stage 6c: fine-tuned from stage 5 (epoch 19) on fresh simulations, 80 % randomised and 20 % KiDS look (seed 20), turns and flips, 20 % of cutouts shown as one grey mix of the bands (--colour-drop 0.2), 12 epochs at lr 1.5e-4; validation: 2000 cutouts of the same mixture (seed 1000020)"
fi
# START=9 without a stage-6c run of your own starts from the one in the repository. (Stages 7
# and 8 were tried and not shipped: docs/robustness.md.)
if [[ ! -f "$stage6c" ]]; then stage6c=$(from_history stage6c); fi
if (( start <= 9 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage9" --init "$stage6c" \
    --epochs 16 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 23 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 9 )) && echo "${resume[@]}" ) \
    --note "stage 9: fine-tuned from stage 6c on fresh simulations whose look-alikes are built around galaxies drawn as lens galaxies are (hosts_as_lenses), 80 % randomised and 20 % KiDS look (seed 23), turns and flips, colour drop 0.2, 16 epochs at lr 1.5e-4; validation: 2000 cutouts of the same mixture (seed 1000023)"
fi
# START=11 without a stage-9 run of your own starts from the shipped one.
if [[ ! -f "$stage9" ]]; then stage9=$(from_history stage9); fi
if (( start <= 11 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage11" --init "$stage9" \
    --epochs 16 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 25 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 11 )) && echo "${resume[@]}" ) \
    --note "stage 11: fine-tuned from stage 9 on fresh simulations of simulator version 3 (a lens galaxy's size drawn apart from its Einstein radius), 80 % randomised and 20 % KiDS look (seed 25), turns and flips, colour drop 0.2, 16 epochs at lr 1.5e-4; validation: 2000 cutouts of the same mixture (seed 1000025)"
fi
# START=12 without a stage-11 run of your own starts from the shipped one (commit 66eb958).
if [[ ! -f "$stage11" ]]; then stage11=$(from_history stage11 66eb958b7d9d273e2c6750172d4e880df773e5f1); fi
if (( start <= 12 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage12" --init "$stage11" \
    --epochs 12 --steps-per-epoch 400 --batch 32 --lr 1e-4 --cosine-lr --seed 26 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 12 )) && echo "${resume[@]}" ) \
    --note "stage 12: stage 11 fine-tuned again on simulator version 3 (seed 26), turns and flips, colour drop 0.2, 12 epochs at lr 1e-4; validation: 2000 cutouts of the mixture (seed 1000026)"
fi
# START=13 without a stage-12 run of your own starts from the shipped one (commit 66eb958).
if [[ ! -f "$stage12" ]]; then
  stage12=$(from_history stage12 66eb958b7d9d273e2c6750172d4e880df773e5f1 models/lens-detector.lensmodel)
fi
if (( start <= 13 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage13" --init "$stage12" \
    --epochs 16 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 27 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 13 )) && echo "${resume[@]}" ) \
    --note "stage 13: fine-tuned from stage 12 on fresh simulations of simulator version 4 (the sources' Poisson noise 1 - 100 times KiDS's per unit flux), 80 % randomised and 20 % KiDS look (seed 27), turns and flips, colour drop 0.2, 16 epochs at lr 1.5e-4; validation: 2000 cutouts of the mixture (seed 1000027)"
fi
# START=14 without a stage-13 run of your own starts from the shipped one (commit 5a1aeba).
if [[ ! -f "$stage13" ]]; then
  stage13=$(from_history stage13 5a1aeba)
fi
if (( start <= 14 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage14" --init "$stage13" \
    --epochs 14 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 28 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 14 )) && echo "${resume[@]}" ) \
    --note "stage 14: fine-tuned from stage 13 on fresh simulations of simulator version 5 (look-alikes' companions, rings and tails coloured as sources are; arcs and companions up to S/N 600), 80 % randomised and 20 % KiDS look (seed 28), turns and flips, colour drop 0.2, 14 epochs at lr 1.5e-4; validation: 2000 cutouts of the mixture (seed 1000028)"
fi
# START=15 without a stage-14 run of your own starts from the one in the repository.
if [[ ! -f "$stage14" ]]; then stage14=models/lens-detector-stage14.lensmodel; fi
if (( start <= 15 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage15" --init "$stage14" \
    --epochs 14 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 29 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 15 )) && echo "${resume[@]}" ) \
    --note "stage 15: fine-tuned from stage 14 on fresh simulations of simulator version 6 (look-alikes' companions and rings as far from their galaxy as Einstein radii are), 80 % randomised and 20 % KiDS look (seed 29), turns and flips, colour drop 0.2, 14 epochs at lr 1.5e-4; validation: 2000 cutouts of the mixture (seed 1000029)"
fi
# START=17 without a stage-15 run of your own starts from the shipped one (commit 990d57b).
if [[ ! -f "$stage15" ]]; then
  stage15=$(from_history stage15 990d57b models/lens-detector.lensmodel)
fi
if (( start <= 17 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage17" --init "$stage15" \
    --epochs 14 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 31 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 17 )) && echo "${resume[@]}" ) \
    --note "stage 17: fine-tuned from stage 15 on fresh simulations of simulator version 7 (ring galaxies' hosts drawn as lens galaxies are; a fifth of lenses with neighbouring galaxies), 80 % randomised and 20 % KiDS look (seed 31), turns and flips, colour drop 0.2, 14 epochs at lr 1.5e-4; validation: 2000 cutouts of the mixture (seed 1000031)"
fi
# START=18 without a stage-17 run of your own starts from the shipped one (commit 15a8a45).
if [[ ! -f "$stage17" ]]; then
  stage17=$(from_history stage17 15a8a45 models/lens-detector.lensmodel)
fi
if (( start <= 18 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage18" --init "$stage17" \
    --epochs 24 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 32 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 18 )) && echo "${resume[@]}" ) \
    --note "stage 18: fine-tuned from stage 17 on fresh simulations of simulator version 7, 80 % randomised and 20 % KiDS look (seed 32), turns and flips, colour drop 0.2, 24 epochs at lr 1.5e-4; validation: 2000 cutouts of the mixture (seed 1000032)"
fi
# START=19 without a stage-18 run of your own starts from the shipped one (commit 7b34093).
if [[ ! -f "$stage18" ]]; then
  stage18=$(from_history stage18 7b34093 models/lens-detector.lensmodel)
fi
if (( start <= 19 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage19" --init "$stage18" \
    --epochs 20 --steps-per-epoch 400 --batch 32 --lr 1e-4 --cosine-lr --seed 33 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 19 )) && echo "${resume[@]}" ) \
    --note "stage 19: stage 18 fine-tuned again on simulator version 7 (seed 33), 80 % randomised and 20 % KiDS look, turns and flips, colour drop 0.2, 20 epochs at lr 1e-4 cosine; validation: 2000 cutouts of the mixture (seed 1000033)"
fi
# START=21 without a stage-19 run of your own starts from the shipped one (commit 5b39b21).
if [[ ! -f "$stage19" ]]; then
  stage19=$(from_history stage19 5b39b21 models/lens-detector.lensmodel)
fi
if (( start <= 21 )); then
  $bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$stage21" --init "$stage19" \
    --epochs 14 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 35 --patience 100 --augment dihedral \
    --colour-drop 0.2 $( (( start == 21 )) && echo "${resume[@]}" ) \
    --note "stage 21: fine-tuned from stage 19 on fresh simulations of simulator version 8 (field galaxies anywhere, 0.5-4 per cutout; one band blank in 5 %), 80 % randomised and 20 % KiDS look (seed 35), turns and flips, colour drop 0.2, 14 epochs at lr 1.5e-4 cosine; validation: 2000 cutouts of the mixture (seed 1000035)"
fi
# START=22 without a stage-21 run of your own starts from the shipped one (commit 447792e).
if [[ ! -f "$stage21" ]]; then
  stage21=$(from_history stage21 447792e models/lens-detector.lensmodel)
fi
$bin train --simulate --look randomised:0.8,kids:0.2 --workers 1 --val-n 2000 --out "$out" --init "$stage21" \
  --epochs 10 --steps-per-epoch 400 --batch 32 --lr 1.5e-4 --cosine-lr --seed 36 --patience 100 --augment dihedral \
  --colour-drop 0.2 --boost ring_galaxy=2.5 $( (( start == 22 )) && echo "${resume[@]}" ) \
  --note "stage 22: fine-tuned from stage 21 on fresh simulations of simulator version 8 with ring galaxies drawn 2.5 times as often among the look-alikes (--boost ring_galaxy=2.5), 80 % randomised and 20 % KiDS look (seed 36), turns and flips, colour drop 0.2, 10 epochs at lr 1.5e-4 cosine; validation: 2000 cutouts of the unboosted mixture (seed 1000036)"
# Held-out measurement: the in-domain test set, the KiDS look and every stress set (fresh seeds).
$bin evaluate-suite --model "$out" --dir "$eval_dir" --n 2000 --seed 2026 --card
