#!/usr/bin/env bash
# Runs every fuzz target for a while from seeds made of the project's own fixtures.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and either a nightly toolchain or
# RUSTC_BOOTSTRAP=1 on stable (set below). Not part of CI (too long); run it after
# changing a parser. A crash leaves its input in fuzz/artifacts/TARGET/ and makes
# this script exit 1; turn each one into a regression test.
#
# Usage: scripts/fuzz-smoke.sh [SECONDS-PER-TARGET] [TARGET...]   (default 60, all)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "fuzz-smoke: cargo install cargo-fuzz first" >&2; exit 2; }
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
if [ -d "$here/../shared/corpus" ]; then
    seed vmdk_sesparse "$here/../shared/corpus"/dissect.hypervisor/*/tests/data/sesparse.vmdk.gz
    seed partition_table "$here/../shared/corpus"/dissect.volume/*/tests/data/{gpt,gpt_4k,gpt_esxi,mbr}.bin
fi

failed=()
for t in "${targets[@]}"; do
    echo "== $t (${secs}s)"
    if ! cargo fuzz run -O "$t" -- -max_total_time="$secs" -max_len=1048576 -rss_limit_mb=1024 \
        -timeout=10 2>"corpus/$t.log"; then
        failed+=("$t")
        tail -30 "corpus/$t.log"
    else
        grep -E "^Done|stat::number_of_executed_units" "corpus/$t.log" | tail -1
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz-smoke: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "fuzz-smoke: no crash in ${#targets[@]} targets"
