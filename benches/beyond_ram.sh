#!/usr/bin/env bash
# The beyond-RAM benchmark: a corpus of >= 8 GB read inside a 3 GiB memory cgroup, the
# page cache evicted before each cold step. Run by hand (root, cgroup v1), never in CI:
#
#   benches/beyond_ram.sh                 # corpus bench-data/big-80m.txt (generated: 80 M lines, 8.26 GB)
#   MMB_BIG=/path/to/file benches/beyond_ram.sh
#
# Every step is one process of `benches/beyond_ram.rs` (or `cat`, or `fio`) run by
# ../shared/tools/in-cgroup, which prints the cgroup's peak and OOM kills.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${MMB_TOOLS:-../shared/tools}
FILE=${MMB_BIG:-bench-data/big-80m.txt}
LIMIT=${MMB_LIMIT:-3G}
GLOBAL_SECONDS=${MMB_GLOBAL_SECONDS:-30}
FIO_SECONDS=${MMB_FIO_SECONDS:-20}

cargo build --release --no-default-features --features cli --bin mmap-batcher --bench beyond_ram >&2
BIN=$(ls -t target/release/deps/beyond_ram-* | grep -v '\.d$' | head -1)
if [ ! -f "$FILE" ]; then
    mkdir -p "$(dirname "$FILE")"
    target/release/mmap-batcher corpus "$FILE" --lines 80000000
fi
INDEX="$FILE.b1-c23.mmbi"
cg() { "$TOOLS/in-cgroup" "$LIMIT" "$@"; }
evict() { "$TOOLS/evict" "$FILE" ${1:+"$INDEX"} > /dev/null 2>&1 || true; }
step() { echo; echo "== $*"; }

echo "corpus: $FILE ($(stat -c %s "$FILE") bytes), memory limit $LIMIT, $(nproc) cores"

step "cold cat"
evict; cg cat "$FILE" > /dev/null

step "cold open, no persisted index (build in memory)"
rm -f "$INDEX"; evict; cg "$BIN" open "$FILE" --no-index-cache

step "cold open, building and writing the persisted index"
rm -f "$INDEX"; evict; cg "$BIN" open "$FILE"

step "cold reopen with the persisted index (data and index evicted)"
evict index; cg "$BIN" open "$FILE"

step "warm reopen with the persisted index"
cg "$BIN" open "$FILE"

for mode in none block; do
    step "one epoch, --shuffle $mode, cold"
    evict index; cg "$BIN" epoch "$FILE" --shuffle "$mode"
done

step "global shuffle, cold, cut after $GLOBAL_SECONDS s"
evict index; cg "$BIN" epoch "$FILE" --shuffle global --seconds "$GLOBAL_SECONDS"

# The disk's own random-read rate, the global shuffle's reference: 4 KiB reads (a line
# of ~100 bytes costs one page) at the depths the shuffle keeps in flight, `pread::DEPTH`
# per building thread (one thread, and the default: one per core).
for depth in 32 $((32 * $(nproc))); do
    step "fio: random 4 KiB reads of the corpus, direct, depth $depth, $FIO_SECONDS s"
    fio --name=random-4k --filename="$FILE" --readonly --rw=randread --bs=4k --direct=1 \
        --ioengine=libaio --iodepth="$depth" --runtime="$FIO_SECONDS" --time_based \
        --output-format=terse --terse-version=3 | awk -F';' '{ printf "fio iops=%s bw_kib_s=%s\n", $8, $7 }'
done

step "block shuffle with the file fully cached (no cgroup): the CPU-bound reference"
cat "$FILE" > /dev/null; "$BIN" epoch "$FILE" --shuffle block --io cached

step "4 processes opening a new file at once, in one $LIMIT cgroup (one builds, three wait)"
rm -f "$INDEX"; evict
cg sh -c "for i in 1 2 3 4; do '$BIN' open '$FILE' & done; wait"

step "8 processes opening with the persisted index, in one $LIMIT cgroup"
evict index
cg sh -c "for i in 1 2 3 4 5 6 7 8; do '$BIN' open '$FILE' & done; wait"
