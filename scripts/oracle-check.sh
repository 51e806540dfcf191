#!/usr/bin/env bash
# Oracle checks (root): compares what vmdkrecover reads with independent readers.
#
#  1. qemu-img: `vmdkrecover export` of each sample disk, and of a 3 GiB disk in every
#     subformat qemu-img writes (and a child made with `convert -B`), == `qemu-img
#     convert -O raw`.
#  2. The kernel: every filesystem of the sample disks is loop-mounted read-only at the
#     offsets that sfdisk and lvm2's own reports give (`losetup -r -o OFFSET
#     --sizelimit SIZE`, `mount -o ro`), and the mounted tree is compared with
#     `vmdkrecover cp` of the same volume: names, types, modes, owners, sizes, mtimes,
#     link counts, symlink targets and file contents.
#  3. The kernel again, on every ext fixture image of crates/extfs/tests/data.
#
# Prints one line per check and "N passed, M failed" at the end; exits 1 on a failure.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

if [ "$(id -u)" != 0 ]; then
    echo "SKIPPED: oracle-check.sh needs root (loop devices, mount)"
    exit 0
fi
for t in losetup mount qemu-img sha256sum; do
    command -v "$t" >/dev/null || { echo "SKIPPED: $t not installed"; exit 0; }
done

cargo build --release --quiet
B="$here/target/release/vmdkrecover"
work=$(mktemp -d)
mounts=()
loops=()
cleanup() {
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || true; done
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
ok() { echo "PASS $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }

# listing DIR: one line per object with everything cp promises to keep.
listing() {
    (cd "$1" && find . -mindepth 1 ! -name lost+found ! -path './lost+found/*' -printf '%P\t%y\t%m\t%U\t%G\t%T@\t%n\t%l\n' |
        LC_ALL=C sort | while IFS=$'\t' read -r p y m u g t n l; do
            s=-
            [ "$y" = f ] && s=$(sha256sum <"$p" | cut -d' ' -f1)
            [ "$y" = d ] && n=-   # directory link counts depend on lost+found
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$p" "$y" "$m" "$u" "$g" "$t" "$n" "$l" "$s"
        done)
}

# ls_normalized PREFIX: an `ls -lR` listing on stdin with its directory headers
# made relative (PREFIX/grub: -> ./grub:) and runs of spaces squeezed, so that
# vmdkrecover's listing (headers are SPECs) and coreutils' (headers are ./paths)
# can be diffed line by line: modes with coreutils' ACL (+) and SELinux-context (.)
# marker, link counts, owners, sizes, times, names, symlink targets and every
# directory's `total` (1 KiB blocks from st_blocks).
ls_normalized() {
    awk -v p="$1" '/:$/ && index($0, p) == 1 {
            rest = substr($0, length(p) + 1); sub(/:$/, "", rest); sub(/^\//, "", rest)
            print (rest == "" ? ".:" : "./" rest ":"); next }
        { gsub(/ +/, " "); print }'
}

# compare_mount NAME IMAGE OFFSET SIZE VMDKRECOVER-ARGS...: vmdkrecover cp -a of a
# volume, compared with the kernel's mount of IMAGE's byte range. vmdkrecover reads
# first; then the kernel mounts. A scratch copy (under $work) is mounted read-write
# capable, so that the kernel replays a journal exactly as at boot (vmdkrecover's
# in-memory replay must agree); committed fixtures are only ever attached read-only.
compare_mount() {
    local name="$1" image="$2" offset="$3" size="$4"
    shift 4
    local mnt="$work/mnt-$name" out="$work/cp-$name" l ro=-r
    case "$image" in "$work"/*) ro= ;; esac
    mkdir -p "$mnt"
    if ! "$B" cp -a "$@" "$out" 2>"$work/cp-err-$name"; then
        bad "$name: vmdkrecover cp failed: $(tail -1 "$work/cp-err-$name")"
        return
    fi
    l=$(losetup $ro -f --show -o "$offset" --sizelimit "$size" "$image") || { bad "$name: losetup"; return; }
    loops+=("$l")
    if ! mount -o ro "$l" "$mnt" 2>"$work/err"; then
        bad "$name: kernel mount failed: $(head -1 "$work/err")"
        return
    fi
    mounts+=("$mnt")
    listing "$mnt" >"$work/kernel-$name.txt"
    listing "$out" >"$work/ours-$name.txt"
    if diff -u "$work/kernel-$name.txt" "$work/ours-$name.txt" >"$work/diff-$name.txt"; then
        ok "$name: kernel mount == vmdkrecover cp ($(wc -l <"$work/kernel-$name.txt") objects)"
    else
        bad "$name: differs from the kernel mount:"; head -20 "$work/diff-$name.txt"
    fi
    # vmdkrecover ls -lRA == coreutils ls -lRAn on the kernel mount (the last
    # argument is the SPEC, which vmdkrecover's headers start with).
    local spec="${*: -1}" style='+%Y-%m-%dT%H:%M:%S.%N'
    "$B" ls -lRA --time-style="$style" "$@" 2>/dev/null | ls_normalized "$spec" >"$work/ls-ours-$name.txt"
    (cd "$mnt" && TZ=UTC LC_ALL=C ls -lRAn --time-style="$style" .) | ls_normalized . >"$work/ls-kernel-$name.txt"
    if diff -u "$work/ls-kernel-$name.txt" "$work/ls-ours-$name.txt" >"$work/diff-ls-$name.txt"; then
        ok "$name: vmdkrecover ls -lRA == ls -lRAn of the kernel mount, totals included ($(grep -c '^total' "$work/ls-kernel-$name.txt") directories)"
    else
        bad "$name: ls -lRA differs from the kernel mount's:"; head -20 "$work/diff-ls-$name.txt"
    fi
}

echo "== qemu-img: export == qemu-img convert -O raw"
for d in vm vm_1; do
    qemu-img convert -O raw "testdata/$d.vmdk" "$work/$d.qemu.raw"
    "$B" export "testdata/$d.vmdk" -o "$work/$d.ours.raw" 2>/dev/null
    if cmp -s "$work/$d.qemu.raw" "$work/$d.ours.raw"; then ok "export $d.vmdk"; else bad "export $d.vmdk"; fi
done

echo "== qemu-img: every subformat it writes, on a 3 GiB disk"
# Larger than 2 GiB so that the twoGbMaxExtent formats have several extents; random
# data at the start, across the 2 GiB extent boundary and at the very end, a run of
# written zeros, and unwritten space between.
big="$work/big.raw"
truncate -s 3G "$big"
head -c 48M /dev/urandom | dd of="$big" conv=notrunc status=none
dd if=/dev/zero of="$big" bs=1M seek=16 count=4 conv=notrunc status=none
head -c 32M /dev/urandom | dd of="$big" bs=1M seek=$((2048 - 16)) conv=notrunc status=none
head -c 8M /dev/urandom | dd of="$big" bs=1M seek=$((3072 - 8)) conv=notrunc status=none
head -c 1000 /dev/urandom | dd of="$big" bs=1 seek=$((1536 * 1024 * 1024 + 12345)) conv=notrunc status=none
# export_matches NAME VMDK: vmdkrecover export (to a file, and to a pipe) against
# qemu-img convert -O raw of the same file.
export_matches() {
    local name="$1" vmdk="$2" want got piped
    qemu-img convert -O raw "$vmdk" "$work/qemu.raw"
    want=$(sha256sum <"$work/qemu.raw" | cut -d' ' -f1)
    rm -f "$work/ours.raw"
    "$B" export "$vmdk" -o "$work/ours.raw" 2>"$work/export-err"
    got=$(sha256sum <"$work/ours.raw" | cut -d' ' -f1)
    piped=$("$B" export "$vmdk" -o - 2>>"$work/export-err" | sha256sum | cut -d' ' -f1)
    if [ "$want" = "$got" ] && [ "$want" = "$piped" ]; then
        ok "export $name == qemu-img convert -O raw ($(du -k "$work/ours.raw" | cut -f1) KiB allocated of 3 GiB)"
    else
        bad "export $name differs from qemu-img convert -O raw: $(tail -1 "$work/export-err")"
    fi
    rm -f "$work/qemu.raw" "$work/ours.raw"
}
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized; do
    mkdir -p "$work/$sub"
    qemu-img convert -f raw -O vmdk -o subformat=$sub "$big" "$work/$sub/disk.vmdk"
    export_matches "$sub" "$work/$sub/disk.vmdk"
done
# A child holding only what differs from its base (qemu-img convert -B).
cp --sparse=always "$big" "$work/new.raw"
head -c 4M /dev/urandom | dd of="$work/new.raw" bs=1M seek=100 conv=notrunc status=none
dd if=/dev/zero of="$work/new.raw" bs=1M seek=2 count=1 conv=notrunc status=none
head -c 777 /dev/urandom | dd of="$work/new.raw" bs=1 seek=$((2048 * 1024 * 1024 - 300)) conv=notrunc status=none
qemu-img convert -f raw -O vmdk -B disk.vmdk -F vmdk "$work/new.raw" "$work/monolithicSparse/child.vmdk"
export_matches "child of monolithicSparse (qemu-img convert -B)" "$work/monolithicSparse/child.vmdk"
cmp -s <("$B" export "$work/monolithicSparse/child.vmdk" -o - 2>/dev/null) "$work/new.raw" &&
    ok "export of the child == the raw file it was made from" || bad "export of the child differs from its source"
rm -rf "$big" "$work/new.raw" "$work"/monolithic* "$work"/twoGb* "$work"/streamOptimized

echo "== kernel: sample disk volumes"
# Offsets from sfdisk and from lvm2's own reports (testdata/LAYOUT.txt).
start() { awk -v p="vm-flat.vmdk$1" '$1 == p { gsub(",", "", $4); print $4 * 512 }' testdata/LAYOUT.txt; }
pe_start() { awk -v d="$1" '$1 == d && NF == 5 { print $4 }' testdata/LAYOUT.txt; }
ext_size() { awk -v v="$1" '$1 == v && NF == 4 { print $3 }' testdata/LAYOUT.txt; }
compare_mount boot testdata/vm-flat.vmdk "$(start 1)" $((16384 * 512)) testdata/vm.vmdk sda1:/
# LogVol00 is one segment on sda2 starting at extent 0.
seg=$(awk '$1 == "LogVol00" && NF == 6 { print $5 " " $6 }' testdata/LAYOUT.txt)
first=$(echo "$seg" | sed -E 's/.*:([0-9]+)-.*/\1/')
size=$(echo "$seg" | cut -d' ' -f1)
compare_mount root testdata/vm-flat.vmdk $(($(start 2) + $(pe_start sda2) + first * $(ext_size VolGroup00))) "$size" \
    testdata/vm.vmdk VolGroup00/LogVol00:/
# VolGroup01/data spans two disks: assemble it with dd from lvm2's segment report.
: >"$work/data.img"
awk '$1 == "data" && NF == 6 { print $4, $5, $6 }' testdata/LAYOUT.txt | while read -r seg_start seg_size ranges; do
    pv=${ranges%%:*}; r=${ranges#*:}; first=${r%-*}
    if [ "$pv" = sdb ]; then img=testdata/vm_1-flat.vmdk; base=0; else img=testdata/vm-flat.vmdk; base=$(start "${pv#sda}"); fi
    dd if="$img" of="$work/data.img" iflag=skip_bytes,count_bytes oflag=seek_bytes conv=notrunc status=none \
        bs=1M skip=$((base + $(pe_start "$pv") + first * $(ext_size VolGroup01))) seek="$seg_start" count="$seg_size"
done
compare_mount data "$work/data.img" 0 "$(stat -c %s "$work/data.img")" --disk testdata/vm_1.vmdk testdata/vm.vmdk VolGroup01/data:/

echo "== FUSE: vmdkrecover mount == the kernel's mount"
if [ -e /dev/fuse ] && [ -f "$work/kernel-root.txt" ]; then
    fmnt="$work/fuse-root"; mkdir -p "$fmnt"
    "$B" mount testdata/vm.vmdk VolGroup00/LogVol00 "$fmnt" 2>"$work/fuse-err" &
    fpid=$!
    for _ in $(seq 1 50); do mountpoint -q "$fmnt" && break; sleep 0.1; done
    if mountpoint -q "$fmnt"; then
        listing "$fmnt" >"$work/fuse-root.txt"
        kill -INT "$fpid"; wait "$fpid" || true
        if mountpoint -q "$fmnt"; then bad "mount: still mounted after Ctrl-C"; umount "$fmnt"; fi
        if diff -u "$work/kernel-root.txt" "$work/fuse-root.txt" >"$work/diff-fuse.txt"; then
            ok "mount: FUSE view of VolGroup00/LogVol00 == kernel mount ($(wc -l <"$work/fuse-root.txt") objects)"
        else
            bad "mount: FUSE view differs from the kernel mount:"; head -20 "$work/diff-fuse.txt"
        fi
    else
        kill "$fpid" 2>/dev/null; bad "mount: did not mount: $(cat "$work/fuse-err")"
    fi
else
    echo "SKIPPED: FUSE check (no /dev/fuse)"
fi

echo "== kernel: ext fixtures of crates/extfs"
shopt -s nullglob
if [ -z "${ORACLE_SKIP_EXTFS:-}" ]; then
for gz in crates/extfs/tests/data/*.img.gz; do
    n=$(basename "$gz" .img.gz)
    gunzip -c "$gz" >"$work/$n.img" || { bad "extfs-$n: cannot decompress"; continue; }
    bs=$(dumpe2fs -h "$work/$n.img" 2>/dev/null | awk -F: '/^Block size/ { gsub(/ /, "", $2); print $2 }')
    if [ -n "$bs" ] && [ "$bs" -gt "$(getconf PAGESIZE)" ]; then
        # This kernel mounts ext4 only with blocks no larger than a page; the crate's
        # tests compare this image with debugfs rdump instead.
        echo "SKIPPED extfs-$n: $bs-byte blocks exceed the kernel's page size (checked against debugfs in cargo test)"
        rm -f "$work/$n.img"
        continue
    fi
    compare_mount "extfs-$n" "$work/$n.img" 0 "$(stat -c %s "$work/$n.img")" "$work/$n.img" sda:/
done
fi

echo "== kernel: XFS fixtures of crates/xfs (v5; this kernel refuses v4, checked with xfs_db in cargo test)"
for z in crates/xfs/tests/data/v5*.img.zst; do
    n=$(basename "$z" .img.zst)
    zstd -q -d -c "$z" >"$work/xfs-$n.img" || { bad "xfs-$n: cannot decompress"; continue; }
    compare_mount "xfs-$n" "$work/xfs-$n.img" 0 "$(stat -c %s "$work/xfs-$n.img")" "$work/xfs-$n.img" sda:/
    rm -f "$work/xfs-$n.img"
done
# Dirty logs: the kernel replays a scratch copy at mount; vmdkrecover replays in memory.
for gz in crates/xfs/tests/data/log-v5*.img.gz; do
    n=$(basename "$gz" .img.gz)
    gunzip -c "$gz" >"$work/xfs-$n.img" || { bad "xfs-$n: cannot decompress"; continue; }
    compare_mount "xfs-$n" "$work/xfs-$n.img" 0 "$(stat -c %s "$work/xfs-$n.img")" "$work/xfs-$n.img" sda:/
done

echo "== kernel: the RHEL-style guest (testdata/rhel9), each filesystem at its place"
rhel="$work/rhel9.raw"
qemu-img convert -f vmdk -O raw testdata/rhel9/rhel9.vmdk "$rhel"
if [ "$(sha256sum <"$rhel" | cut -d' ' -f1)" = "$(cut -d' ' -f1 testdata/rhel9/SHA256.raw.txt)" ]; then
    ok "rhel9: vmdkrecover's fixture equals its recorded qemu-img raw checksum"
else
    bad "rhel9: qemu-img raw checksum differs from SHA256.raw.txt"
fi
p2=$(sgdisk -i 2 "$rhel" | awk '/First sector/ {print $3}')
p3=$(sgdisk -i 3 "$rhel" | awk '/First sector/ {print $3}')
compare_mount "rhel9-boot" "$rhel" $((p2 * 512)) $((32 * 1024 * 1024)) testdata/rhel9/rhel9.vmdk sda2:/
# LVs at the places lvm2's report (LAYOUT.txt) gives: pe_start 1 MiB, 4 MiB extents.
while read -r lv first size; do
    compare_mount "rhel9-$lv" "$rhel" $((p3 * 512 + 1048576 + first * 4194304)) "$size" testdata/rhel9/rhel9.vmdk "rhel/$lv:/"
done < <(awk '/^# lvs/ {on=1; next} on && $1 != "LV" && NF >= 3 && $1 != "swap" {
    split($3, r, "[:-]"); sz = $2; sub(/B$/, "", sz); print $1, r[2], sz }' testdata/rhel9/LAYOUT.txt)

echo "oracle-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
