#!/usr/bin/env bash
# Scores a survey-sized project on a SLURM cluster: one array task per shard, each reading the
# project read-only and writing a small predictions file; merge them afterwards, on any machine:
#
#   PROJECT=/data/kids.lensproj OUT=/data/shards sbatch --array=1-32 scripts/score_slurm.sh
#   lens-inspect score merge /data/shards/shard-*-of-32.json --project /data/kids.lensproj
#
# Environment: PROJECT (required), OUT (default: shards beside the project), MODEL (default: the
# shipped model built into the program), TTA (1-8 views), LENS_INSPECT (the program; default
# lens-inspect on the PATH), N (shards; default: the array's task count). A candidate's shard is a
# hash of its name, so every task finds its own share without talking to the others. Merging is
# idempotent: merge as shards finish, merge again when the rest are in; `score merge` says which
# shards are still missing (exit status 3 until none are). A task that failed can simply be rerun
# (sbatch --array=K): its file is written whole or not at all.
#
# The project file must be on a filesystem every node reads; it is only read, never written, by
# the tasks. Outside SLURM, set SLURM_ARRAY_TASK_ID (1-based) and N yourself.
#SBATCH --job-name=lens-score
#SBATCH --cpus-per-task=8
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --output=lens-score-%A_%a.log
set -euo pipefail
: "${PROJECT:?set PROJECT to the project file}"
k=${SLURM_ARRAY_TASK_ID:?not an array task: set SLURM_ARRAY_TASK_ID (1-based)}
n=${N:-${SLURM_ARRAY_TASK_COUNT:?set N, the number of shards}}
out=${OUT:-$(dirname "$PROJECT")/shards}
bin=${LENS_INSPECT:-lens-inspect}
mkdir -p "$out"
# Use the CPUs SLURM gave the task, not every core of the node.
export RAYON_NUM_THREADS=${SLURM_CPUS_PER_TASK:-${RAYON_NUM_THREADS:-}}
[[ -z "$RAYON_NUM_THREADS" ]] && unset RAYON_NUM_THREADS
args=(score --project "$PROJECT" --shard "$k/$n" --shard-out "$out/shard-$k-of-$n.json")
[[ -n "${MODEL:-}" ]] && args+=(--model "$MODEL")
[[ -n "${TTA:-}" ]] && args+=(--tta "$TTA")
exec "$bin" "${args[@]}"
