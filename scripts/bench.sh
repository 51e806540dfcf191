#!/usr/bin/env bash
# Benchmarks vmdkrecover against the best existing path on the same image, in one run
# (hyperfine, warm page cache, medians). Needs root (loop devices, mount, lvm2).
#
# The benchmark disk (built once, kept in $BENCH_DIR): an 8 GiB ESX-style VMDK (vmfs
# descriptor + flat), MBR, /boot ext3 on sda1, LVM2 on sda2 with a 6 GiB ext4 root LV
# holding a copy of this machine's /etc and /usr/share (~50,000 entries) and a 1 GiB
# random file; the same disk as monolithicSparse and streamOptimized VMDKs (written by
# qemu-img); and a 2 TiB sparse flat disk with the same first 8 GiB.
#
# Jobs (DESIGN.md / issue 6):
#   J1  ls -l /etc (also the static-PIE build) vs debugfs -R 'ls -l /etc' on the raw LV; ls -l on a loop mount
#   J2  copy the 1 GiB file (into tmpfs; onto the disk)  vs  dd bs=1M of the same bytes from the flat file; cp from the mount
#   J3  copy /usr/share       vs  debugfs rdump; cp -a from the mount (and the mount itself)
#   J4  J1-J3 on monolithicSparse and streamOptimized  vs  qemu-img convert + the raw path
#   X1-X3 J1-J3 on the XFS version of the disk (issue 11: RHEL 9 layout, rhel/root XFS)
#       against the kernel's XFS on a read-only loop mount
#   RSS peak resident memory of each vmdkrecover job (/usr/bin/time -v)
#   L1-L3 J1-J3 with the flat file behind NFS-like latency (issue 13): nbdkit's delay
#       filter (`--filter=delay file FLAT rdelay=D`) exposed as a file by nbdfuse, page
#       cache dropped before every run, against debugfs on a read-only loop device over
#       the slow file, dd of the bytes, and the kernel path (losetup -r + mount -o ro +
#       ls/cp). D from LATENCIES (default "1ms 0.2ms 5ms"; L3 skipped at 5ms).
#       XL1-XL3: the same on the XFS disk against the kernel path.
#   LS1-LS3, LT1-LT3 L1-L3 on the monolithicSparse (LS) and streamOptimized (LT) disks
#       behind the same latency, against qemu's own vmdk driver over the slow file
#       (qemu-nbd -r -f vmdk on a unix socket, its raw view exposed as a file by a
#       second nbdfuse; no kernel nbd module): debugfs on a loop device over that view,
#       dd of the bytes from it, the kernel path on it; LAT_CONVERT=1 adds qemu-img
#       convert -O raw of the slow file + dd to LS2/LT2. Long: run only with
#       LAT_VMDK=1 or an ONLY naming them (e.g. ONLY='^L[ST]'); B_BASE=BINARY adds a
#       second vmdkrecover (e.g. main's) to each of them, and to L3 and XL3.
#
# Usage: scripts/bench.sh [--quick | --build-only]   (--quick: fewer runs)
#        RUNS=N, ONLY=REGEX (job titles; "RSS" for the memory table), LATENCIES,
#        LAT_RUNS (L1), LAT_RUNS_BIG (L2, L3), WARMUP (runs, default 2), COLD_TOOLS=1,
#        LAT_VMDK=1, LAT_CONVERT=1, B_BASE in the environment
# Output: the tables (medians, via scripts/hf-medians.py) on stdout and in
# $BENCH_DIR/results.md.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/vmdkrecover-bench}
RUNS=${RUNS:-10}
ONLY=${ONLY:-}   # a regex: run only the jobs whose title matches (e.g. ONLY='J1|export')
BUILD_ONLY=
case "${1:-}" in
    --quick) RUNS=3 ;;
    --build-only) BUILD_ONLY=1 ;;
esac
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root (loop devices, mount)" >&2; exit 2; }
for t in hyperfine debugfs mke2fs mkfs.xfs xfs_io mkswap sfdisk lvm qemu-img /usr/bin/time nbdkit nbdfuse fusermount3; do
    command -v "$t" >/dev/null || { echo "bench.sh: $t missing (apt-get install hyperfine e2fsprogs xfsprogs fdisk lvm2 qemu-utils time nbdkit nbdfuse fuse3)" >&2; exit 2; }
done
export LVM_SUPPRESS_FD_WARNINGS=1
MiB=$((1024 * 1024))
GiB=$((1024 * MiB))
mkdir -p "$BENCH_DIR"
cd "$BENCH_DIR"

# The static-PIE build (`cargo static-release`, README) first, kept aside for J1's
# start-up row; then the usual dynamic build, which every other job runs.
(cd "$here" && cargo --quiet static-release && cp target/release/vmdkrecover "$BENCH_DIR/vmdkrecover-static")
(cd "$here" && cargo build --release --quiet)
B="$here/target/release/vmdkrecover"
BS="$BENCH_DIR/vmdkrecover-static"

loops=()
mnt="$BENCH_DIR/mnt"
slow="$BENCH_DIR/slow"
cleanup() {
    umount "$mnt" 2>/dev/null || true
    umount "$mnt-slow" 2>/dev/null || true
    umount "$mnt-xfs" 2>/dev/null || true
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    fusermount3 -u "$slow" 2>/dev/null || true
    for f in sparse stream; do
        fusermount3 -u "$BENCH_DIR/qraw-$f" 2>/dev/null || true
        fusermount3 -u "$slow-$f" 2>/dev/null || true
    done
    for p in "${qnbd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
qnbd_pids=()
trap cleanup EXIT

########################################################################## build
if [ ! -f bench.vmdk ] || [ ! -f root-lv.raw ]; then
    echo "== building the benchmark disk in $BENCH_DIR (once)"
    if [ ! -f root-lv.raw ]; then
        rm -rf src && mkdir -p src/usr src/home/bench src/boot
        cp -a /etc src/etc
        cp -a /usr/share src/usr/share
        head -c $GiB /dev/urandom >src/home/bench/big.bin
    fi
    mkdir -p src/boot
    echo "kernel placeholder" >src/boot/vmlinuz
    truncate -s $((8 * GiB)) bench-flat.vmdk
    sfdisk -q bench-flat.vmdk <<'EOF'
label: dos
start=2048, size=1048576, type=83, bootable
start=1050624, type=8e
EOF
    pv_start=$((1050624 * 512))
    pv_size=$((8 * GiB - pv_start))
    l=$(losetup -f --show -o $pv_start --sizelimit $pv_size bench-flat.vmdk); loops+=("$l")
    L="--driverloaded n --config devices{filter=[\"a|^$l\$|\",\"r|.*|\"]obtain_device_list_from_udev=0}"
    # shellcheck disable=SC2086
    {
        lvm pvcreate -q -ff -y $L "$l"
        lvm vgcreate -q $L VolGroup00 "$l"
        lvm lvcreate -q $L -an --zero n -L 6g -n LogVol00 VolGroup00
        lvm lvcreate -q $L -an --zero n -L 1g -n LogVol01 VolGroup00
    } 2>&1 | grep -v -e 'Activation disabled' -e 'not zeroed' || true
    # shellcheck disable=SC2086
    read -r pe_start < <(lvm pvs $L --noheadings --units b --nosuffix -o pe_start "$l" 2>/dev/null)
    # shellcheck disable=SC2086
    read -r ranges < <(lvm lvs $L --noheadings --segments -o seg_pe_ranges VolGroup00/LogVol00 2>/dev/null)
    # shellcheck disable=SC2086
    read -r ext < <(lvm vgs $L --noheadings --units b --nosuffix -o vg_extent_size VolGroup00 2>/dev/null)
    first=${ranges#*:}; first=${first%-*}
    echo "$((pv_start + pe_start + first * ext))" >root-lv.offset
    losetup -d "$l"; loops=()
    mke2fs -q -F -t ext3 -L boot -d src/boot -E offset=$((2048 * 512)) bench-flat.vmdk 512M
    [ -f root-lv.raw ] || mke2fs -q -F -t ext4 -L root -d src root-lv.raw 6G
    dd if=root-lv.raw of=bench-flat.vmdk bs=4M oflag=seek_bytes seek="$(cat root-lv.offset)" conv=notrunc,sparse status=none
    cat >bench.vmdk <<EOF
# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=a1b2c3d4
parentCID=ffffffff
createType="vmfs"

# Extent description
RW $((8 * GiB / 512)) VMFS "bench-flat.vmdk"

# The Disk Data Base
#DDB
ddb.adapterType = "lsilogic"
ddb.virtualHWVersion = "8"
EOF
    qemu-img convert -f vmdk -O vmdk -o subformat=monolithicSparse bench.vmdk bench-sparse.vmdk
    qemu-img convert -f vmdk -O vmdk -o subformat=streamOptimized bench.vmdk bench-stream.vmdk
    truncate -s 2T big-flat.vmdk
    dd if=bench-flat.vmdk of=big-flat.vmdk bs=4M conv=notrunc,sparse status=none
    sed -e "s/RW $((8 * GiB / 512)) VMFS \"bench-flat.vmdk\"/RW $((2048 * GiB / 512)) VMFS \"big-flat.vmdk\"/" bench.vmdk >big.vmdk
    # The 1 GiB file's bytes on the flat file (for dd): debugfs's own block map.
    blk=$(debugfs -R "bmap /home/bench/big.bin 0" root-lv.raw 2>/dev/null)
    last=$(debugfs -R "bmap /home/bench/big.bin $((GiB / 4096 - 1))" root-lv.raw 2>/dev/null)
    [ $((last - blk)) = $((GiB / 4096 - 1)) ] || echo "note: big.bin is not contiguous; dd reads its first extent range"
    echo $(($(cat root-lv.offset) + blk * 4096)) >big.offset
    rm -rf src
fi
# The XFS version (issue 11), as a RHEL 9 guest has it: MBR, /boot XFS on sda1, LVM
# VG "rhel" on sda2 with LVs root (6 GiB XFS) and swap; mkfs.xfs with the RHEL 9
# defaults spelled out (crc=1 finobt=1 sparse=1 reflink=1, rmapbt=0); the same tree
# as the ext root, copied by the kernel (cp -a from a read-only mount of the ext LV).
if [ ! -f bench-xfs.vmdk ] || [ ! -f root-xfs.raw ]; then
    echo "== building the XFS benchmark disk in $BENCH_DIR (once)"
    mkdir -p "$mnt" "$mnt-xfs"
    xfs_opts=(-q -f -m crc=1,finobt=1,reflink=1,rmapbt=0 -i sparse=1)
    if [ ! -f root-xfs.raw ]; then
        rm -f root-xfs.raw.tmp
        truncate -s $((6 * GiB)) root-xfs.raw.tmp
        mkfs.xfs "${xfs_opts[@]}" -L root root-xfs.raw.tmp
        le=$(losetup -r -f --show root-lv.raw); loops+=("$le")
        lx=$(losetup -f --show root-xfs.raw.tmp); loops+=("$lx")
        mount -o ro "$le" "$mnt"
        mount "$lx" "$mnt-xfs"
        cp -a "$mnt/." "$mnt-xfs/"
        rm -rf "${mnt:?}-xfs/lost+found"
        umount "$mnt-xfs"; umount "$mnt"
        losetup -d "$lx"; losetup -d "$le"; loops=()
        mv root-xfs.raw.tmp root-xfs.raw
    fi
    rm -f bench-xfs-flat.vmdk
    truncate -s $((8 * GiB)) bench-xfs-flat.vmdk
    sfdisk -q bench-xfs-flat.vmdk <<'EOF'
label: dos
start=2048, size=2097152, type=83, bootable
start=2099200, type=8e
EOF
    pv_start=$((2099200 * 512))
    pv_size=$((8 * GiB - pv_start))
    lb=$(losetup -f --show -o $((2048 * 512)) --sizelimit $GiB bench-xfs-flat.vmdk); loops+=("$lb")
    mkfs.xfs "${xfs_opts[@]}" -L boot "$lb"
    mount "$lb" "$mnt-xfs"; echo "kernel placeholder" >"$mnt-xfs/vmlinuz"; umount "$mnt-xfs"
    losetup -d "$lb"; loops=()
    l=$(losetup -f --show -o $pv_start --sizelimit $pv_size bench-xfs-flat.vmdk); loops+=("$l")
    L="--driverloaded n --config devices{filter=[\"a|^$l\$|\",\"r|.*|\"]obtain_device_list_from_udev=0}"
    # shellcheck disable=SC2086
    {
        lvm pvcreate -q -ff -y $L "$l"
        lvm vgcreate -q $L rhel "$l"
        lvm lvcreate -q $L -an --zero n -L 6g -n root rhel
        lvm lvcreate -q $L -an --zero n -L 512m -n swap rhel
    } 2>&1 | grep -v -e 'Activation disabled' -e 'not zeroed' || true
    # shellcheck disable=SC2086
    read -r pe_start < <(lvm pvs $L --noheadings --units b --nosuffix -o pe_start "$l" 2>/dev/null)
    # shellcheck disable=SC2086
    read -r ext < <(lvm vgs $L --noheadings --units b --nosuffix -o vg_extent_size rhel 2>/dev/null)
    lv_off() { # lv_off LV: the LV's first byte on the flat file (its first segment)
        local ranges first
        # shellcheck disable=SC2086
        read -r ranges < <(lvm lvs $L --noheadings --segments -o seg_pe_ranges "rhel/$1" 2>/dev/null)
        first=${ranges#*:}; first=${first%-*}
        echo $((pv_start + pe_start + first * ext))
    }
    lv_off root >root-xfs.offset
    swap_off=$(lv_off swap)
    losetup -d "$l"; loops=()
    lw=$(losetup -f --show -o "$swap_off" --sizelimit $((512 * MiB)) bench-xfs-flat.vmdk); loops+=("$lw")
    mkswap -q -L swap "$lw" >/dev/null; losetup -d "$lw"; loops=()
    dd if=root-xfs.raw of=bench-xfs-flat.vmdk bs=4M oflag=seek_bytes seek="$(cat root-xfs.offset)" conv=notrunc,sparse status=none
    sed -e 's/"bench-flat.vmdk"/"bench-xfs-flat.vmdk"/' bench.vmdk >bench-xfs.vmdk
    # The 1 GiB file's bytes on the flat file (for dd): the kernel's block map
    # (xfs_io bmap, 512-byte units), first extent.
    lx=$(losetup -r -f --show root-xfs.raw); loops+=("$lx")
    mount -o ro "$lx" "$mnt-xfs"
    bmap=$(xfs_io -r -c 'bmap' "$mnt-xfs/home/bench/big.bin")
    umount "$mnt-xfs"; losetup -d "$lx"; loops=()
    first_ext=$(awk 'NR == 2 {print $3}' <<<"$bmap")
    [ "$(awk 'NR > 1' <<<"$bmap" | wc -l)" = 1 ] || echo "note: big.bin on XFS is not one extent; dd reads the first one's range"
    echo $(($(cat root-xfs.offset) + ${first_ext%%..*} * 512)) >big-xfs.offset
fi
[ -n "$BUILD_ONLY" ] && { echo "bench disk ready in $BENCH_DIR"; exit 0; }
root_off=$(cat root-lv.offset)
big_off=$(cat big.offset)
V=VolGroup00/LogVol00

########################################################################## run
results="$BENCH_DIR/results.md"
{
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, $(uname -r); $(date -u +%Y-%m-%d)"
    echo
} >"$results"
hf() { # hf TITLE CMD...: without a --prepare step, no shell (-N) for ms-exact timings
    local title="$1"; shift
    if [ -n "$ONLY" ] && ! [[ "$title" =~ $ONLY ]]; then return 0; fi
    echo "== $title"
    echo "### $title" >>"$results"
    local shell=-N
    case " $* " in *" --prepare "*) shell= ;; esac
    # shellcheck disable=SC2086
    hyperfine $shell --warmup "${WARMUP:-2}" --runs "$RUNS" --export-json "$BENCH_DIR/hf.json" "$@" >/dev/null
    python3 "$here/scripts/hf-medians.py" "$BENCH_DIR/hf.json" | tee -a "$results"
    echo >>"$results"
}
rss() { # rss LABEL CMD...: peak RSS in MiB
    local label="$1"; shift
    local kb
    kb=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
    echo "| $label | $((kb / 1024)) MiB |" | tee -a "$results"
}

l=$(losetup -r -f --show -o "$root_off" --sizelimit $((6 * GiB)) bench-flat.vmdk); loops+=("$l")
mkdir -p "$mnt"; mount -o ro "$l" "$mnt"
out="$BENCH_DIR/out"
rm -rf "$out"; mkdir -p "$out"

# big_copy TITLE NOTE TMPFS IMAGE SRC FLAT OFFSET DD_NAME MOUNTED_FILE: the 1 GiB
# file copied by us, by dd of its bytes at OFFSET in FLAT, and by cp from the mount;
# into TMPFS, then 3 runs onto the disk after a sync ("TITLE onto the disk (NOTE)").
big_copy() {
    local title=$1 note=$2 tmp=$3 image=$4 src=$5 flat=$6 off=$7 dd_name=$8 mounted=$9
    hf "$title into tmpfs" \
        --prepare "rm -f $tmp/big.bin $tmp/dd.bin $tmp/cp.bin" \
        -n "vmdkrecover cp" "$B cp $image $src $tmp/big.bin" \
        -n "$dd_name" "dd if=$flat of=$tmp/dd.bin bs=1M iflag=skip_bytes skip=$off count=1024 status=none" \
        -n "cp from the loop mount" "cp $mounted $tmp/cp.bin"
    rm -f "$tmp"/*.bin
    local runs_saved=$RUNS; RUNS=3
    hf "$title onto the disk ($note)" \
        --prepare "rm -f $out/big.bin $out/dd.bin $out/cp.bin; sync" \
        -n "vmdkrecover cp" "$B cp $image $src $out/big.bin" \
        -n "$dd_name" "dd if=$flat of=$out/dd.bin bs=1M iflag=skip_bytes skip=$off count=1024 status=none" \
        -n "cp from the loop mount" "cp $mounted $out/cp.bin"
    RUNS=$runs_saved
}

hf "J1 ls -l /etc (8 GiB flat disk; 2 TiB sparse disk)" \
    -n "vmdkrecover (8 GiB)" "$B ls -l bench.vmdk $V:/etc" \
    -n "vmdkrecover (8 GiB), static PIE" "$BS ls -l bench.vmdk $V:/etc" \
    -n "vmdkrecover (2 TiB)" "$B ls -l big.vmdk $V:/etc" \
    -n "debugfs on the raw LV" "debugfs -R 'ls -l /etc' root-lv.raw" \
    -n "ls -l on the loop mount" "ls -l $mnt/etc"

# J2 and J3 write into tmpfs: on this kind of VM the disk's file-creation latency
# swings between 0.1 and 1 ms from one minute to the next (a bare `open(O_CREAT)`
# loop shows it), and 1 GiB of dirty pages onto the disk is written back while the
# next run copies (round 5: our J2 runs onto /var/tmp spread from 0.30 to 1.86 s),
# which would measure the disk, not the tools. The same jobs onto the disk follow.
shm=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
big_copy "J2 copy the 1 GiB file" "noisy: see above" "$shm" bench.vmdk "$V:/home/bench/big.bin" \
    bench-flat.vmdk "$big_off" "dd bs=1M of its bytes" "$mnt/home/bench/big.bin"

hf "J3 copy /usr/share (~50,000 entries) into tmpfs" \
    --prepare "rm -rf $shm/share $shm/rdump $shm/cpa; mkdir -p $shm/rdump" \
    -n "vmdkrecover cp" "$B cp bench.vmdk $V:/usr/share $shm/share" \
    -n "vmdkrecover cp --threads 1" "$B cp --threads 1 bench.vmdk $V:/usr/share $shm/share" \
    -n "debugfs rdump" "debugfs -R 'rdump /usr/share $shm/rdump' root-lv.raw" \
    -n "cp -a from the mount" "cp -a $mnt/usr/share $shm/cpa"
rm -rf "$shm"
RUNS_SAVED=$RUNS; RUNS=3
hf "J3 copy /usr/share onto the disk (noisy: see above)" \
    --prepare "rm -rf $out/share $out/rdump $out/cpa; mkdir -p $out/rdump; sync" \
    -n "vmdkrecover cp" "$B cp bench.vmdk $V:/usr/share $out/share" \
    -n "debugfs rdump" "debugfs -R 'rdump /usr/share $out/rdump' root-lv.raw" \
    -n "cp -a from the mount" "cp -a $mnt/usr/share $out/cpa"
RUNS=$RUNS_SAVED
rm -rf "$out"/share "$out"/rdump "$out"/cpa

hf "J4 sparse and stream-optimized: ls -l /etc" \
    -n "vmdkrecover (monolithicSparse)" "$B ls -l bench-sparse.vmdk $V:/etc" \
    -n "vmdkrecover (streamOptimized)" "$B ls -l bench-stream.vmdk $V:/etc"

hf "J4 sparse and stream-optimized: copy the 1 GiB file" \
    --prepare "rm -f $out/big.bin $out/conv.raw" \
    -n "vmdkrecover cp (monolithicSparse)" "$B cp bench-sparse.vmdk $V:/home/bench/big.bin $out/big.bin" \
    -n "vmdkrecover cp (streamOptimized)" "$B cp bench-stream.vmdk $V:/home/bench/big.bin $out/big.bin" \
    -n "qemu-img convert -O raw (monolithicSparse; before any mount)" "qemu-img convert -O raw bench-sparse.vmdk $out/conv.raw" \
    -n "qemu-img convert -O raw (streamOptimized; before any mount)" "qemu-img convert -O raw bench-stream.vmdk $out/conv.raw"

shm=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
hf "J4 sparse and stream-optimized: copy /usr/share into tmpfs" \
    --prepare "rm -rf $shm/share" \
    -n "vmdkrecover cp (monolithicSparse)" "$B cp bench-sparse.vmdk $V:/usr/share $shm/share" \
    -n "vmdkrecover cp (streamOptimized)" "$B cp bench-stream.vmdk $V:/usr/share $shm/share"
rm -rf "$shm"

hf "J4 sparse and stream-optimized: export the whole disk" \
    --prepare "rm -f $out/exp.raw $out/conv.raw" \
    -n "vmdkrecover export (monolithicSparse)" "$B export bench-sparse.vmdk -o $out/exp.raw" \
    -n "qemu-img convert -O raw (monolithicSparse)" "qemu-img convert -O raw bench-sparse.vmdk $out/conv.raw" \
    -n "vmdkrecover export (streamOptimized)" "$B export bench-stream.vmdk -o $out/exp.raw" \
    -n "qemu-img convert -O raw (streamOptimized)" "qemu-img convert -O raw bench-stream.vmdk $out/conv.raw"

# XFS (issue 11): the same jobs on the XFS version of the disk, against the kernel's
# XFS (a read-only loop mount of the root LV); xfs_db cannot copy files out.
xfs_off=$(cat root-xfs.offset)
big_xfs_off=$(cat big-xfs.offset)
X=rhel/root
lx=$(losetup -r -f --show -o "$xfs_off" --sizelimit $((6 * GiB)) bench-xfs-flat.vmdk); loops+=("$lx")
# nouuid: a second mount of the same image (another checkout's run) has its UUID.
mkdir -p "$mnt-xfs"; mount -o ro,nouuid "$lx" "$mnt-xfs"
# The floor under any command here: starting a process (/bin/true), and our
# binary's own start-up (--version: the loader, libgcc_s, std's runtime, clap).
hf "X1 XFS: ls -l /etc" \
    -n "vmdkrecover" "$B ls -l bench-xfs.vmdk $X:/etc" \
    -n "vmdkrecover --version (start-up only)" "$B --version" \
    -n "/bin/true (a process's start-up)" "/bin/true" \
    -n "xfs_db -r ls /etc on the raw LV (names only, no log replay)" "xfs_db -r -c 'path /etc' -c ls root-xfs.raw" \
    -n "ls -l on the loop mount" "ls -l $mnt-xfs/etc"
# X2 as J2: into tmpfs, then onto the disk after a sync (3 runs; see J2 for why).
shm=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
big_copy "X2 XFS: copy the 1 GiB file" "noisy: see J2" "$shm" bench-xfs.vmdk "$X:/home/bench/big.bin" \
    bench-xfs-flat.vmdk "$big_xfs_off" "dd bs=1M of 1 GiB at its first extent" "$mnt-xfs/home/bench/big.bin"
rm -f "$out"/big.bin "$out"/dd.bin "$out"/cp.bin
hf "X3 XFS: copy /usr/share into tmpfs" \
    --prepare "rm -rf $shm/share $shm/cpa" \
    -n "vmdkrecover cp" "$B cp bench-xfs.vmdk $X:/usr/share $shm/share" \
    -n "vmdkrecover cp --threads 1" "$B cp --threads 1 bench-xfs.vmdk $X:/usr/share $shm/share" \
    -n "cp -a from the mount" "cp -a $mnt-xfs/usr/share $shm/cpa"
rm -rf "$shm"
umount "$mnt-xfs"
losetup -d "$lx"

if [ -z "$ONLY" ] || [[ "RSS" =~ $ONLY ]]; then
    echo "== peak RSS" | tee -a "$results"
    echo "| job | peak RSS |" | tee -a "$results"
    echo "|---|---|" | tee -a "$results"
    rm -rf "$out"/*
    rss "J1 ls -l /etc" "$B" ls -l bench.vmdk $V:/etc
    rss "J2 cp 1 GiB file" "$B" cp bench.vmdk $V:/home/bench/big.bin "$out/big.bin"
    rss "J3 cp /usr/share" "$B" cp bench.vmdk $V:/usr/share "$out/share"
    rm -rf "$out"/*
    rss "J4 cp 1 GiB file (streamOptimized)" "$B" cp bench-stream.vmdk $V:/home/bench/big.bin "$out/big.bin"
    rss "J4 export (monolithicSparse)" "$B" export bench-sparse.vmdk -o "$out/exp.raw"
    rm -f "$out/exp.raw"
    rss "J4 export (streamOptimized)" "$B" export bench-stream.vmdk -o "$out/exp.raw"
    rss "J1 ls -l /etc (2 TiB disk)" "$B" ls -l big.vmdk $V:/etc
    rss "X1 XFS ls -l /etc" "$B" ls -l bench-xfs.vmdk rhel/root:/etc
    rm -rf "$out"/*
    rss "X2 XFS cp 1 GiB file" "$B" cp bench-xfs.vmdk rhel/root:/home/bench/big.bin "$out/big.bin"
    rss "X3 XFS cp /usr/share" "$B" cp bench-xfs.vmdk rhel/root:/usr/share "$out/share"
fi
rm -rf "$out"

########################################################################## latency
# The flat files behind D of delay per read request. Before every run the page cache
# is dropped and the tools' own binaries and libraries are read back: the disk is
# cold, the tools are not (with them cold too, every run also pays 20-40 ms of
# page faults on this VM's local disk, which measures the binary's size, not its
# reads; COLD_TOOLS=1 keeps them cold).
umount "$mnt" 2>/dev/null || true
LATENCIES=${LATENCIES:-1ms 0.2ms 5ms}
tools="$B ${B_BASE:-} $(command -v debugfs) $(command -v cp) $(command -v ls) $(command -v mount) $(command -v dd)"
# shellcheck disable=SC2086
libs=$(ldd $tools 2>/dev/null | awk '/=>/ {print $3}' | sort -u | tr '\n' ' ')
drop="sync; echo 3 >/proc/sys/vm/drop_caches"
[ -n "${COLD_TOOLS:-}" ] || drop="$drop; cat $tools $libs >/dev/null"
slow_up() { # slow_up DELAY FLAT DIR: DIR/FLAT reads $BENCH_DIR/FLAT with DELAY per request
    mkdir -p "$3"
    nbdfuse -r "$3/$2" --command nbdkit -s --filter=delay file "$BENCH_DIR/$2" rdelay="$1" &
    for _ in $(seq 100); do [ -s "$3/$2" ] && return 0; sleep 0.1; done
    echo "bench.sh: nbdfuse did not come up" >&2; exit 2
}
slow_down() {
    fusermount3 -u "$slow" 2>/dev/null || true
    fusermount3 -u "$slow-xfs" 2>/dev/null || true
    wait 2>/dev/null || true
}
mkdir -p "$mnt-slow" "$out"
for d in $LATENCIES; do
    slow_up "$d" bench-flat.vmdk "$slow"
    slow_up "$d" bench-xfs-flat.vmdk "$slow-xfs"
    S="$slow/bench-flat.vmdk"
    SX="$slow-xfs/bench-xfs-flat.vmdk"
    sl=$(losetup -r -f --show -o "$root_off" --sizelimit $((6 * GiB)) "$S"); loops+=("$sl")
    slx=$(losetup -r -f --show -o "$xfs_off" --sizelimit $((6 * GiB)) "$SX"); loops+=("$slx")
    RUNS_SAVED=$RUNS; RUNS=${LAT_RUNS:-5}
    hf "L1 ($d per request, cold) ls -l /etc" --prepare "$drop" \
        -n "vmdkrecover" "$B ls -l $S $V:/etc" \
        -n "debugfs on a loop device over the slow file" "debugfs -R 'ls -l /etc' $sl" \
        -n "kernel: mount -o ro + ls -l + umount" "mount -o ro $sl $mnt-slow && ls -l $mnt-slow/etc >/dev/null; umount $mnt-slow"
    hf "XL1 XFS ($d per request, cold) ls -l /etc" --prepare "$drop" \
        -n "vmdkrecover" "$B ls -l $SX $X:/etc" \
        -n "kernel: mount -o ro + ls -l + umount" "mount -o ro $slx $mnt-slow && ls -l $mnt-slow/etc >/dev/null; umount $mnt-slow"
    RUNS=${LAT_RUNS_BIG:-3}
    # Into tmpfs (L2_OUT=disk: onto this VM's disk, whose writeback then bounds a
    # copy that reads faster than about 400 MB/s).
    o=$out
    [ "${L2_OUT:-tmpfs}" = disk ] || o=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
    hf "L2 ($d per request, cold) copy the 1 GiB file" --prepare "$drop; rm -f $o/big.bin $o/dd.bin $o/cp.bin" \
        -n "vmdkrecover cp" "$B cp $S $V:/home/bench/big.bin $o/big.bin" \
        -n "dd bs=1M of its bytes" "dd if=$S of=$o/dd.bin bs=1M iflag=skip_bytes skip=$big_off count=1024 status=none" \
        -n "kernel: mount -o ro + cp + umount" "mount -o ro $sl $mnt-slow && cp $mnt-slow/home/bench/big.bin $o/cp.bin; umount $mnt-slow"
    rm -f "$o"/*.bin
    hf "XL2 XFS ($d per request, cold) copy the 1 GiB file" --prepare "$drop; rm -f $o/big.bin $o/dd.bin $o/cp.bin" \
        -n "vmdkrecover cp" "$B cp $SX $X:/home/bench/big.bin $o/big.bin" \
        -n "dd bs=1M of 1 GiB at its first extent" "dd if=$SX of=$o/dd.bin bs=1M iflag=skip_bytes skip=$big_xfs_off count=1024 status=none" \
        -n "kernel: mount -o ro + cp + umount" "mount -o ro $slx $mnt-slow && cp $mnt-slow/home/bench/big.bin $o/cp.bin; umount $mnt-slow"
    rm -f "$o"/*.bin
    [ "$o" = "$out" ] || rmdir "$o"
    if [ "$d" != 5ms ]; then
        shm=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
        lbase3=()
        xbase3=()
        [ -z "${B_BASE:-}" ] || lbase3=(-n "vmdkrecover cp (B_BASE)" "$B_BASE cp $S $V:/usr/share $shm/share")
        [ -z "${B_BASE:-}" ] || xbase3=(-n "vmdkrecover cp (B_BASE)" "$B_BASE cp $SX $X:/usr/share $shm/share")
        hf "L3 ($d per request, cold) copy /usr/share into tmpfs" \
            --prepare "$drop; rm -rf $shm/share $shm/rdump $shm/cpa; mkdir -p $shm/rdump" \
            -n "vmdkrecover cp" "$B cp $S $V:/usr/share $shm/share" "${lbase3[@]}" \
            -n "debugfs rdump" "debugfs -R 'rdump /usr/share $shm/rdump' $sl" \
            -n "kernel: mount -o ro + cp -a + umount" "mount -o ro $sl $mnt-slow && cp -a $mnt-slow/usr/share $shm/cpa; umount $mnt-slow"
        hf "XL3 XFS ($d per request, cold) copy /usr/share into tmpfs" \
            --prepare "$drop; rm -rf $shm/share $shm/cpa" \
            -n "vmdkrecover cp" "$B cp $SX $X:/usr/share $shm/share" "${xbase3[@]}" \
            -n "kernel: mount -o ro + cp -a + umount" "mount -o ro $slx $mnt-slow && cp -a $mnt-slow/usr/share $shm/cpa; umount $mnt-slow"
        rm -rf "$shm"
    fi
    RUNS=$RUNS_SAVED
    if [ -z "$ONLY" ] || [[ "L2 ($d) RSS" =~ $ONLY ]]; then
        rss "L2 ($d) cp 1 GiB file" "$B" cp "$S" $V:/home/bench/big.bin "$out/rss.bin"
        rm -f "$out"/*
    fi
    if [ "$d" != 5ms ] && { [ -z "$ONLY" ] || [[ "L3 ($d) RSS" =~ $ONLY ]]; }; then
        shm=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
        sync; echo 3 >/proc/sys/vm/drop_caches
        rss "L3 ($d) cp /usr/share" "$B" cp "$S" $V:/usr/share "$shm/share"
        rm -rf "$shm"
    fi
    losetup -d "$sl"; losetup -d "$slx"
    slow_down
done
rm -rf "$out"

########################################################################## latency, sparse and stream
# L1-L3 on the monolithicSparse and streamOptimized disks (issue 13: "the same on
# the streamOptimized and monolithicSparse versions"). The existing path for these
# formats without vmdkrecover is qemu's vmdk driver: qemu-nbd reads the slow file
# (through the host page cache, as qemu does by default) and serves the raw disk on
# a unix socket, a second nbdfuse makes that a file, and debugfs, dd and the kernel
# read it as in L1-L3. qemu-nbd stays up across runs, so its own small L2-table
# cache may be warm where the page cache is not (in its favour). After each L*2 the
# copies' sha256 is checked against the 1 GiB file's bytes on the flat disk.
lat_vmdk=${LAT_VMDK:-}
only_any() { # only_any NAME...: ONLY is set and matches one of the names
    local n
    [ -n "$ONLY" ] || return 1
    for n in "$@"; do [[ "$n" =~ $ONLY ]] && return 0; done
    return 1
}
if only_any LS1 LS2 LS3 LT1 LT2 LT3; then lat_vmdk=1; fi
qnbd_up() { # qnbd_up SLOWFILE DIR: DIR/raw.img is SLOWFILE as qemu-nbd -f vmdk serves it
    mkdir -p "$2"
    rm -f "$2.sock"
    qemu-nbd -r -f vmdk --shared=0 --persistent -k "$2.sock" "$1" &
    qnbd_pids+=("$!")
    for _ in $(seq 100); do [ -S "$2.sock" ] && break; sleep 0.1; done
    nbdfuse -r "$2/raw.img" --unix "$2.sock" &
    for _ in $(seq 100); do [ -s "$2/raw.img" ] && return 0; sleep 0.1; done
    echo "bench.sh: qemu-nbd + nbdfuse did not come up" >&2; exit 2
}
if [ -n "$lat_vmdk" ]; then
    # The references: the file as the kernel reads it from the flat disk, and the
    # bytes dd reads from the flat file (its first extent's range, as in L2).
    if [ ! -f big-file.sha256 ]; then
        lr=$(losetup -r -f --show -o "$root_off" --sizelimit $((6 * GiB)) bench-flat.vmdk); loops+=("$lr")
        mount -o ro "$lr" "$mnt"
        sha256sum "$mnt/home/bench/big.bin" | cut -d' ' -f1 >big-file.sha256
        umount "$mnt"; losetup -d "$lr"
    fi
    [ -f big-dd.sha256 ] || dd if=bench-flat.vmdk bs=1M iflag=skip_bytes skip="$big_off" count=1024 status=none | sha256sum | cut -d' ' -f1 >big-dd.sha256
    file_sum=$(cat big-file.sha256)
    dd_sum=$(cat big-dd.sha256)
    qtools="$(command -v qemu-img)"
    # shellcheck disable=SC2086
    qlibs=$(ldd $qtools 2>/dev/null | awk '/=>/ {print $3}' | sort -u | tr '\n' ' ')
    qdrop=$drop
    [ -n "${COLD_TOOLS:-}" ] || qdrop="$drop; cat $qtools $qlibs ${B_BASE:-} >/dev/null"
    mkdir -p "$mnt-slow" "$out"
    for d in $LATENCIES; do
        for f in sparse stream; do
            case $f in sparse) J=LS; fmt=monolithicSparse ;; stream) J=LT; fmt=streamOptimized ;; esac
            if [ -n "$ONLY" ] && ! only_any "${J}1" "${J}2" "${J}3"; then continue; fi
            slow_up "$d" "bench-$f.vmdk" "$slow-$f"
            SF="$slow-$f/bench-$f.vmdk"
            qnbd_up "$SF" "$BENCH_DIR/qraw-$f"
            QR="$BENCH_DIR/qraw-$f/raw.img"
            ql=$(losetup -r -f --show -o "$root_off" --sizelimit $((6 * GiB)) "$QR"); loops+=("$ql")
            base1=(); base2=(); base3=()
            o=$(mktemp -d /dev/shm/vmdkrecover-bench.XXXXXX)
            if [ -n "${B_BASE:-}" ]; then
                base1=(-n "vmdkrecover (B_BASE)" "$B_BASE ls -l $SF $V:/etc")
                base2=(-n "vmdkrecover cp (B_BASE)" "$B_BASE cp $SF $V:/home/bench/big.bin $o/base.bin")
                base3=(-n "vmdkrecover cp (B_BASE)" "$B_BASE cp $SF $V:/usr/share $o/share")
            fi
            conv=()
            if [ -n "${LAT_CONVERT:-}" ]; then
                conv=(-n "qemu-img convert -O raw + dd of its bytes" "qemu-img convert -O raw $SF $o/conv.raw && dd if=$o/conv.raw of=$o/cv.bin bs=1M iflag=skip_bytes skip=$big_off count=1024 status=none; rm -f $o/conv.raw")
            fi
            RUNS_SAVED=$RUNS; RUNS=${LAT_RUNS:-5}
            hf "${J}1 $fmt ($d per request, cold) ls -l /etc" --prepare "$qdrop" \
                -n "vmdkrecover" "$B ls -l $SF $V:/etc" "${base1[@]}" \
                -n "debugfs on a loop device over qemu-nbd's raw view" "debugfs -R 'ls -l /etc' $ql" \
                -n "kernel: mount -o ro (over qemu-nbd) + ls -l + umount" "mount -o ro $ql $mnt-slow && ls -l $mnt-slow/etc >/dev/null; umount $mnt-slow"
            RUNS=${LAT_RUNS_BIG:-3}
            # Each run's copy is kept aside (renamed, in the untimed prepare step) so
            # that every command's last copy is there for the sha256 check below.
            keep="for x in $o/*.bin; do [ -e \"\$x\" ] && mv -f \"\$x\" \"\$x.keep\"; done; rm -f $o/conv.raw"
            hf "${J}2 $fmt ($d per request, cold) copy the 1 GiB file" --prepare "$qdrop; $keep" \
                -n "vmdkrecover cp" "$B cp $SF $V:/home/bench/big.bin $o/big.bin" "${base2[@]}" \
                -n "dd bs=1M of its bytes (qemu-nbd's raw view)" "dd if=$QR of=$o/dd.bin bs=1M iflag=skip_bytes skip=$big_off count=1024 status=none" \
                -n "kernel: mount -o ro (over qemu-nbd) + cp + umount" "mount -o ro $ql $mnt-slow && cp $mnt-slow/home/bench/big.bin $o/cp.bin; umount $mnt-slow" \
                "${conv[@]}"
            if [ -n "$ONLY" ] && ! [[ "${J}2" =~ $ONLY ]]; then :; else
                for c in "$o"/*.bin "$o"/*.bin.keep; do
                    [ -e "$c" ] || continue
                    s=$(sha256sum "$c" | cut -d' ' -f1)
                    case $(basename "$c") in dd.bin* | cv.bin*) ref=$dd_sum; what="dd of the flat file" ;; *) ref=$file_sum; what="the file on the flat disk (kernel)" ;; esac
                    if [ "$s" = "$ref" ]; then r="same bytes as $what"; else r="**DIFFERENT from $what ($ref)**"; fi
                    echo "sha256 ${J}2 $(basename "$c"): $s: $r" | tee -a "$results"
                done
                echo >>"$results"
            fi
            rm -f "$o"/*.bin "$o"/*.bin.keep
            if [ "$d" != 5ms ]; then
                hf "${J}3 $fmt ($d per request, cold) copy /usr/share into tmpfs" \
                    --prepare "$qdrop; rm -rf $o/share $o/rdump $o/cpa; mkdir -p $o/rdump" \
                    -n "vmdkrecover cp" "$B cp $SF $V:/usr/share $o/share" "${base3[@]}" \
                    -n "debugfs rdump (over qemu-nbd)" "debugfs -R 'rdump /usr/share $o/rdump' $ql" \
                    -n "kernel: mount -o ro (over qemu-nbd) + cp -a + umount" "mount -o ro $ql $mnt-slow && cp -a $mnt-slow/usr/share $o/cpa; umount $mnt-slow"
            fi
            RUNS=$RUNS_SAVED
            if [ -z "$ONLY" ] || [[ "${J}2 ${J}3 ($d) RSS" =~ $ONLY ]]; then
                rm -rf "$o"/*
                sync; echo 3 >/proc/sys/vm/drop_caches
                rss "${J}2 $fmt ($d) cp 1 GiB file" "$B" cp "$SF" $V:/home/bench/big.bin "$o/rss.bin"
                if [ "$d" != 5ms ]; then
                    sync; echo 3 >/proc/sys/vm/drop_caches
                    rss "${J}3 $fmt ($d) cp /usr/share" "$B" cp "$SF" $V:/usr/share "$o/share"
                fi
            fi
            rm -rf "$o"
            losetup -d "$ql"
            fusermount3 -u "$BENCH_DIR/qraw-$f" 2>/dev/null || true
            # qemu-nbd must be gone before the slow file can be unmounted.
            for p in "${qnbd_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
            qnbd_pids=()
            fusermount3 -u "$slow-$f" 2>/dev/null || true
            wait 2>/dev/null || true
        done
    done
fi
echo "results: $results"
