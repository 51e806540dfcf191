#!/usr/bin/env bash
# Builds the sample disks in testdata/ with the real tools, as a sysadmin's VM would
# have them, and records what is inside from the source trees (never from our code).
#
#   testdata/vm.vmdk + vm-flat.vmdk      ESX layout (createType "vmfs"), 32 MiB:
#       sda1  /boot  ext3 (label boot)
#       sda2  LVM2 PV  -> VolGroup00: LogVol00 (ext4 root, label root), LogVol01 (swap)
#       sda3  extended -> sda5  LVM2 PV (first PV of VolGroup01)
#   testdata/vm_1.vmdk + vm_1-flat.vmdk  8 MiB, the whole disk is the second PV of
#       VolGroup01; VolGroup01/data (ext4, /srv) spans sda5 and sdb.
#   testdata/MANIFEST.<volume>.tsv       path, type, mode, mtime, size, sha256, link
#                                        target, source inode (hard links share it)
#   testdata/LAYOUT.txt                  lvm2's own reports (pvs, lvs --segments)
#
# Needs root (loop devices for lvm2), sfdisk, lvm2, e2fsprogs, mkswap. device-mapper
# is not needed: lvm2 runs with --driverloaded n, and since the LVs cannot be
# activated, each filesystem is made in a file and written to the PV byte ranges
# that lvm2's own `lvs --segments` report gives.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/testdata"
work=$(mktemp -d)
loops=()
cleanup() {
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "make-testdata.sh: needs root (loop devices for lvm2)" >&2; exit 2; }
for t in sfdisk lvm mke2fs mkswap sha256sum; do
    command -v "$t" >/dev/null || { echo "make-testdata.sh: $t not found (apt-get install fdisk lvm2 e2fsprogs util-linux)" >&2; exit 2; }
done

export LVM_SUPPRESS_FD_WARNINGS=1
MiB=$((1024 * 1024))
# A fixed time for everything the trees do not set themselves, so the fixtures
# are reproducible apart from the random file contents.
T0="2024-03-01 12:00:00 UTC"

lvm_on() { # lvm_on DEV... -- lvm2 flags that see only these loop devices
    local accept=""
    for d in "$@"; do accept="$accept\"a|^$d\$|\","; done
    echo "--driverloaded n --config devices{filter=[${accept}\"r|.*|\"]obtain_device_list_from_udev=0}"
}

############################################################################
# Source trees
############################################################################
make_root_tree() {
    local r="$1"
    mkdir -p "$r"/{etc/httpd/conf,etc/sysconfig/network-scripts,etc/empty.d,home/alice,var/log,usr/share/zoneinfo,srv}
    cat >"$r/etc/fstab" <<'EOF'
LABEL=root              /                       ext4    defaults        1 1
LABEL=boot              /boot                   ext3    defaults        1 2
/dev/VolGroup00/LogVol01 swap                   swap    defaults        0 0
/dev/VolGroup01/data    /srv                    ext4    defaults        1 2
proc                    /proc                   proc    defaults        0 0
EOF
    printf 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n' >"$r/etc/passwd"
    printf 'root:!locked::0:99999:7:::\n' >"$r/etc/shadow"; chmod 0400 "$r/etc/shadow"
    printf '127.0.0.1 localhost\n10.0.0.5 web01\n' >"$r/etc/hosts"
    { echo 'ServerRoot "/etc/httpd"'; echo 'Listen 80'; for i in $(seq 1 400); do echo "# filler directive $i"; done; } >"$r/etc/httpd/conf/httpd.conf"
    printf 'DEVICE=eth0\nBOOTPROTO=dhcp\n' >"$r/etc/sysconfig/network-scripts/ifcfg-eth0"
    printf 'UTC\n' >"$r/usr/share/zoneinfo/UTC"
    ln -s ../usr/share/zoneinfo/UTC "$r/etc/localtime"                 # relative symlink
    ln -s /etc/httpd/conf/httpd.conf "$r/etc/httpd.conf"               # absolute symlink
    ln -s "$(printf 'a%.0s' $(seq 1 100))/$(printf 'b%.0s' $(seq 1 100))/target" "$r/etc/long-symlink" # slow symlink (>60 bytes)
    ln -s /does/not/exist "$r/etc/dangling"
    ln "$r/etc/hosts" "$r/etc/hosts.hardlink"                          # hard link
    : >"$r/etc/empty-file"
    printf 'caf\xc3\xa9\n' >"$r/etc/caf$(printf '\xc3\xa9') menu.txt"   # UTF-8 and a space
    head -c 1048576 /dev/urandom >"$r/home/alice/random.bin"
    # A sparse file: data, a 2 MiB hole, data.
    head -c 5000 /dev/urandom >"$r/var/log/sparse.img"
    truncate -s $((2 * MiB + 5000)) "$r/var/log/sparse.img"
    head -c 3000 /dev/urandom >>"$r/var/log/sparse.img"
    for i in $(seq 1 150); do echo "entry $i" >"$r/var/log/msg.$i"; done
    chmod 0750 "$r/home/alice"; chmod 0644 "$r/etc/passwd"; chmod 4755 "$r/etc/empty-file"
    mkfifo "$r/var/log/fifo"
    find "$r" -exec touch -h -d "$T0" {} +
    touch -h -d "2019-06-15 08:30:00 UTC" "$r/etc/fstab"
    touch -h -d "2023-12-24 18:00:01 UTC" "$r/etc/httpd/conf/httpd.conf"
    touch -h -d "2001-01-01 00:00:00 UTC" "$r/etc/localtime"
}

make_boot_tree() {
    local b="$1"
    mkdir -p "$b/grub"
    cat >"$b/grub/grub.conf" <<'EOF'
default=0
timeout=5
title CentOS (2.6.18-398.el5)
        root (hd0,0)
        kernel /vmlinuz-2.6.18-398.el5 ro root=/dev/VolGroup00/LogVol00
        initrd /initrd-2.6.18-398.el5.img
EOF
    head -c 300000 /dev/urandom >"$b/vmlinuz-2.6.18-398.el5"
    ln -s grub.conf "$b/grub/menu.lst"
    find "$b" -exec touch -h -d "$T0" {} +
}

make_srv_tree() {
    local s="$1"
    mkdir -p "$s/www/html" "$s/backup"
    printf '<html>hello</html>\n' >"$s/www/html/index.html"
    head -c 2500000 /dev/urandom >"$s/backup/db.dump"
    find "$s" -exec touch -h -d "$T0" {} +
}

# manifest TREE > FILE: one line per object, from the source tree itself.
manifest() {
    (cd "$1" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | while IFS= read -r p; do
        local type size sum="-" target="-"
        type=$(stat -c %F "$p")
        case "$type" in
            "regular file"|"regular empty file") type=f; sum=$(sha256sum <"$p" | cut -d' ' -f1) ;;
            directory) type=d ;;
            "symbolic link") type=l; target=$(readlink "$p") ;;
            fifo) type=p ;;
            *) type=o ;;
        esac
        size=$(stat -c %s "$p")
        [ "$type" = d ] && size=-
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "/$p" "$type" "$(stat -c %a "$p")" "$(stat -c %Y "$p")" \
            "$size" "$sum" "$target" "$(stat -c %i "$p")"
    done)
}

############################################################################
# Disk 1: vm-flat.vmdk
############################################################################
mkdir -p "$work"/{root,boot,srv}
make_root_tree "$work/root"
make_boot_tree "$work/boot"
make_srv_tree "$work/srv"

disk1="$work/vm-flat.vmdk"
disk2="$work/vm_1-flat.vmdk"
truncate -s $((32 * MiB)) "$disk1"
truncate -s $((8 * MiB)) "$disk2"

sfdisk -q "$disk1" <<'EOF'
label: dos
label-id: 0x000c2f1e
start=2048, size=16384, type=83, bootable
start=18432, size=36864, type=8e
start=55296, size=10240, type=5
start=57344, size=8192, type=8e
EOF
sfdisk -d "$disk1" >"$work/partitions.txt"

part_loop() { # part_loop IMAGE START_SECTOR SIZE_SECTORS -> loop device
    local l
    l=$(losetup -f --show -o $(($2 * 512)) --sizelimit $(($3 * 512)) "$1")
    loops+=("$l"); echo "$l"
}
pv_a=$(part_loop "$disk1" 18432 36864)   # sda2
pv_b=$(part_loop "$disk1" 57344 8192)    # sda5
pv_c=$(losetup -f --show "$disk2"); loops+=("$pv_c")   # sdb (whole disk)

L=$(lvm_on "$pv_a" "$pv_b" "$pv_c")
# shellcheck disable=SC2086
{
    lvm pvcreate -q $L "$pv_a" "$pv_b" "$pv_c"
    lvm vgcreate -q $L -s 1m VolGroup00 "$pv_a"
    lvm vgcreate -q $L -s 1m VolGroup01 "$pv_b" "$pv_c"
    lvm lvcreate -q $L -an --zero n -L 13m -n LogVol00 VolGroup00
    lvm lvcreate -q $L -an --zero n -L 4m -n LogVol01 VolGroup00
    lvm lvcreate -q $L -an --zero n -L 8m -n data VolGroup01
} 2>&1 | grep -v -e 'Activation disabled' -e 'not zeroed' || true

pv_name() { case "$1" in "$pv_a") echo sda2 ;; "$pv_b") echo sda5 ;; "$pv_c") echo sdb ;; esac; }
# lvm2's reports, with guest names for the loop devices.
# shellcheck disable=SC2086
{
    echo "# pvs --units b -o pv_name,vg_name,pv_size,pe_start,pv_uuid"
    lvm pvs $L --noheadings --units b --nosuffix -o pv_name,vg_name,pv_size,pe_start,pv_uuid 2>/dev/null
    echo "# vgs --units b -o vg_name,vg_uuid,vg_extent_size,seqno"
    lvm vgs $L --noheadings --units b --nosuffix -o vg_name,vg_uuid,vg_extent_size,seqno 2>/dev/null
    echo "# lvs --units b --segments -o lv_name,vg_name,lv_size,seg_start,seg_size,seg_pe_ranges"
    lvm lvs $L --noheadings --units b --nosuffix --segments -o lv_name,vg_name,lv_size,seg_start,seg_size,seg_pe_ranges 2>/dev/null
} | sed -e "s|$pv_a|sda2|g" -e "s|$pv_b|sda5|g" -e "s|$pv_c|sdb|g" >"$work/LAYOUT.txt"

# write_lv VG LV FILE: writes FILE's bytes where lvm2 says the LV's segments are.
write_lv() {
    local vg="$1" lv="$2" file="$3" pe_start ext
    ext=$(lvm vgs $L --noheadings --units b --nosuffix -o vg_extent_size "$vg" 2>/dev/null | tr -d ' ')
    # seg_pe_ranges looks like "/dev/loop1:0-12"; seg_start is in bytes.
    # shellcheck disable=SC2086
    lvm lvs $L --noheadings --units b --nosuffix --segments -o seg_start,seg_pe_ranges "$vg/$lv" 2>/dev/null |
    while read -r seg_start ranges; do
        local dev="${ranges%%:*}" r="${ranges#*:}"
        local first="${r%-*}" last="${r#*-}"
        pe_start=$(lvm pvs $L --noheadings --units b --nosuffix -o pe_start "$dev" 2>/dev/null | tr -d ' ')
        local count=$((last - first + 1))
        dd if="$file" of="$dev" bs="$ext" skip=$((seg_start / ext)) \
           seek=$(( (pe_start + first * ext) / ext )) count="$count" conv=notrunc,sparse status=none 2>/dev/null ||
        dd if="$file" of="$dev" iflag=skip_bytes,count_bytes oflag=seek_bytes bs=64k skip="$seg_start" \
           seek=$((pe_start + first * ext)) count=$((count * ext)) conv=notrunc,sparse status=none
    done
}

# /boot: ext3 straight into sda1.
mke2fs -q -F -t ext3 -L boot -d "$work/boot" -E offset=$((2048 * 512)) "$disk1" 8M
# / : ext4 (4 KiB blocks, as a real root LV would have) in LogVol00.
mke2fs -q -F -t ext4 -b 4096 -L root -U 5f1b6d52-8f0e-4c37-9a57-3f0f3a4c1d01 -d "$work/root" "$work/root.img" 13M
write_lv VolGroup00 LogVol00 "$work/root.img"
mkswap -q -L swap "$work/swap.img" >/dev/null 2>&1 || { truncate -s 4M "$work/swap.img"; mkswap -q -L swap "$work/swap.img"; }
truncate -s 4M "$work/swap.img"; mkswap -q -L swap "$work/swap.img"
write_lv VolGroup00 LogVol01 "$work/swap.img"
# /srv: ext4 in VolGroup01/data, which spans sda5 and sdb.
mke2fs -q -F -t ext4 -L srv -d "$work/srv" "$work/srv.img" 8M
write_lv VolGroup01 data "$work/srv.img"
for l in "${loops[@]}"; do losetup -d "$l"; done; loops=()

e2fsck -fn "$work/root.img" >/dev/null
e2fsck -fn "$work/srv.img" >/dev/null

############################################################################
# Descriptors (as ESX writes them) and the record of what is inside
############################################################################
descriptor() { # descriptor NAME SECTORS CID
    cat <<EOF
# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=$3
parentCID=ffffffff
isNativeSnapshot="no"
createType="vmfs"

# Extent description
RW $2 VMFS "$1-flat.vmdk"

# The Disk Data Base 
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "$(($2 / 16065 + 1))"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "2c9f1e6a4b3d8e7f1a2b3c4d$3"
ddb.thinProvisioned = "1"
ddb.uuid = "60 00 C2 9d 3a 51 7e 0b-4f 12 8a 90 11 c5 2e 7d"
ddb.virtualHWVersion = "8"
EOF
}

mkdir -p "$out"
rm -f "$out"/vm.vmdk "$out"/vm-flat.vmdk "$out"/vm_1.vmdk "$out"/vm_1-flat.vmdk "$out"/MANIFEST.*.tsv
descriptor vm 65536 8c2b4e1f >"$out/vm.vmdk"
descriptor vm_1 16384 3e9a0c7d >"$out/vm_1.vmdk"
cp --sparse=always "$disk1" "$out/vm-flat.vmdk"
cp --sparse=always "$disk2" "$out/vm_1-flat.vmdk"
manifest "$work/root" >"$out/MANIFEST.root.tsv"
manifest "$work/boot" >"$out/MANIFEST.boot.tsv"
manifest "$work/srv" >"$out/MANIFEST.srv.tsv"
{ sed "s|$work/||" "$work/partitions.txt"; echo; cat "$work/LAYOUT.txt"; } >"$out/LAYOUT.txt"
# What qemu-img (an independent VMDK reader) sees in each descriptor.
if command -v qemu-img >/dev/null; then
    for d in vm vm_1; do
        qemu-img convert -O raw "$out/$d.vmdk" "$work/$d.raw"
        echo "$(sha256sum <"$work/$d.raw" | cut -d' ' -f1)  $d.vmdk (qemu-img convert -O raw)"
    done >"$out/SHA256.qemu.txt"
fi
echo "testdata: written to $out"
