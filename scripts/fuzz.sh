#!/usr/bin/env bash
# Runs every fuzz target for a while from seeds made of the project's own fixtures,
# under libFuzzer's memory limits (-rss_limit_mb=512, -malloc_limit_mb=256: a parser
# that allocates from an unchecked on-disk size is a finding), two targets at a time.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and either a nightly toolchain or
# RUSTC_BOOTSTRAP=1 on stable (set below). CI runs it for 60 s per target; run it
# longer after changing a parser. A crash leaves its input in fuzz/artifacts/TARGET/
# and makes this script exit 1; turn each one into a regression test. The last line
# of each target's log (executions, peak RSS) is printed; fuzz/corpus/ keeps the
# grown corpora between runs (not committed).
#
# Usage: scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]   (default 60, all)
#        FUZZ_JOBS=N targets at once (default 2)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo install cargo-fuzz first" >&2; exit 2; }
jobs=${FUZZ_JOBS:-2}
# AddressSanitizer keeps 256 MiB of freed memory in quarantine by default, which
# alone eats half of the 512 MiB RSS limit; a smaller quarantine leaves the limit to
# measure the parser.
export ASAN_OPTIONS="${ASAN_OPTIONS:-quarantine_size_mb=16:malloc_context_size=10}"
cd "$here/fuzz"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

# seed TARGET FILE...: copies fixtures (gunzipped, at most 1 MiB each) into the
# target's corpus folder.
seed() {
    local t="$1"; shift
    mkdir -p "corpus/$t"
    for f in "$@"; do
        [ -f "$f" ] || continue
        local out
        out="corpus/$t/seed-$(basename "$f" .gz)"
        case "$f" in
            *.gz) gunzip -c "$f" | head -c 1048576 >"$out" ;;
            *.zst) out=${out%.zst}; zstd -dc "$f" | head -c 1048576 >"$out" ;;
            *) head -c 1048576 "$f" >"$out" ;;
        esac
    done
}
D="$here/crates"
seed extfs_walk "$D"/extfs/tests/data/tiny-ext2.img.gz "$D"/extfs/tests/data/tiny-ext4.img.gz
seed vmdk_descriptor "$here"/testdata/*.vmdk "$D"/vmdk/testdata/*.vmdk.gz
seed vmdk_sparse "$D"/vmdk/testdata/msparse.vmdk.gz "$D"/vmdk/testdata/stream.vmdk.gz
seed vmdk_cowd "$D"/vmdk/testdata/cowd-000001-delta.vmdk.gz
seed lvm2_label "$D"/lvm2/tests/data/linear/pv1.img.gz
seed lvm2_mda "$D"/lvm2/tests/data/linear/pv1.img.gz "$D"/lvm2/tests/data/wrap/pv1.img.gz
seed lvm2_metadata_text "$D"/lvm2/tests/data/*/backup.vg
seed partition_table "$here"/testdata/vm-flat.vmdk "$D"/partitions/tests/data/*.img.gz
seed partition_gpt "$D"/partitions/tests/data/*.img.gz
# Structure-aware targets (checksums recomputed after mutation): real images.
seed lvm2_mda_csum "$D"/lvm2/tests/data/{linear,mdacopies2,wrap,segments}/pv1.img.gz
seed extfs_csum "$D"/extfs/tests/data/{ext4-64bit-csum,ext4,tiny-ext4,ext4-inline}.img.gz
seed xfs_csum "$D"/xfs/tests/data/{v5,v5_1k,v5_nrext64}.img.zst
if [ -d "$here/../shared/corpus" ]; then
    seed vmdk_sesparse "$here/../shared/corpus"/dissect.hypervisor/*/tests/data/sesparse.vmdk.gz
    seed partition_table "$here/../shared/corpus"/dissect.volume/*/tests/data/{gpt,gpt_4k,gpt_esxi,mbr}.bin
fi

# Build every target once, then run them.
cargo fuzz build -O >/dev/null 2>"corpus/build.log" || { tail -30 "corpus/build.log"; exit 2; }
run_one() {
    local t="$1"
    mkdir -p "corpus/$t"
    if cargo fuzz run -O "$t" -- -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=512 \
        -malloc_limit_mb=256 -timeout=10 -print_final_stats=1 >"corpus/$t.out" 2>"corpus/$t.log"; then
        local execs rss
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "corpus/$t.log" | grep -o '[0-9]*$' | tail -1)
        rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "corpus/$t.log" | grep -o '[0-9]*$' | tail -1)
        echo "ok   $t: ${execs:-?} executions in ${secs}s, peak RSS ${rss:-?} MB"
    else
        echo "FAIL $t (input in fuzz/artifacts/$t/):"
        grep -E "ERROR|panicked|SUMMARY" "corpus/$t.log" | head -5
        return 1
    fi
}
failed=0
running=0
for t in "${targets[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || failed=$((failed + 1))
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=$((failed + 1))
    running=$((running - 1))
done
if [ "$failed" -gt 0 ]; then
    echo "fuzz.sh: $failed of ${#targets[@]} targets crashed (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz.sh: no crash in ${#targets[@]} targets"
