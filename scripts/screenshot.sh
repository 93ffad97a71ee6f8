#!/usr/bin/env bash
# Screenshots of the real window under Xvfb: the grade view (volunteer) and the review view
# (researcher), on PROJECT (default: the demo project, made if missing).
# Needs: apt-get install -y --no-install-recommends xvfb imagemagick
# Usage: scripts/screenshot.sh [PROJECT] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
project=${1:-}
out=${2:-screenshots}
mkdir -p "$out"
cargo build --release
bin=target/release/lens-inspect
if [ -z "$project" ]; then
  project="${LENS_INSPECT_HOME:-$HOME/.local/share/lens-inspect}/demo.lensproj"
  if [ ! -f "$project" ]; then
    # Making the demo needs the window once; build it through a short run instead.
    "$bin" simulate --n 300 --out "$out/demo-data" --seed 2024 --lens-fraction 0.3 >/dev/null
    project="$out/demo.lensproj"
    rm -f "$project"
    "$bin" ingest "$out/demo-data" --project "$project" --truth "$out/demo-data/classifications.csv" --store-pixels >/dev/null || true
    "$bin" score --project "$project" >/dev/null || true
  fi
fi
unset WAYLAND_DISPLAY
Xvfb :97 -screen 0 1280x820x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true' EXIT
sleep 1
shot() { # name, args...
  local name=$1; shift
  DISPLAY=:97 "$bin" gui --project "$project" "$@" &
  local pid=$!
  sleep 6
  DISPLAY=:97 import -window root "$out/$name.png"
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}
shot grade --inspector screenshot-volunteer
# Review views are for researchers, and only a researcher of the project grants that role: the
# screenshot inspector is given it here (in a project of your own, run this yourself or skip it).
"$bin" inspectors add screenshot-researcher --role researcher --project "$project" >/dev/null
shot review --inspector screenshot-researcher --role researcher --review
shot gallery --inspector screenshot-researcher --role researcher --review --review-tab gallery
shot dashboard --inspector screenshot-researcher --role researcher --review --review-tab dashboard
echo "wrote $out/grade.png, review.png, gallery.png and dashboard.png"
