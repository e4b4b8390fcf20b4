#!/bin/sh
# Shrinks the kept corpus of one target after a campaign: the named inputs
# (seed-*, crash-*) stay, and of the fuzzer's finds only those that add a
# coverage edge (counters off, so the set stays small). Run from the
# repository root after `cargo +nightly fuzz build`; usage: minimize.sh TARGET MAX_LEN
set -eu
t=$1 len=$2
bin=${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release/$t
old=$(mktemp -d)
mv "fuzz/corpus/$t" "$old/all"
mkdir "fuzz/corpus/$t"
cp "$old/all"/seed-* "fuzz/corpus/$t/"
cp "$old/all"/crash-* "fuzz/corpus/$t/" 2>/dev/null || true
"$bin" -merge=1 -use_counters=0 -max_len="$len" "fuzz/corpus/$t" "$old/all" 2>&1 | grep "MERGE-OUTER: .* new files"
rm -rf "$old"
