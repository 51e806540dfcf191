#!/bin/sh
# cp --retries against a disk that fails for a while (root; nbdkit, nbdfuse).
#
# nbdkit's error filter makes every read fail with EIO while the file $T exists
# (nbdkit-error-filter(1), error-pread-file); nbdfuse exposes the disk as a file.
# The trigger is raised during the copy and removed 0.35 s later: without
# --retries the copy fails, with --retries 5 it succeeds and the file's sha256 is
# the one in testdata/MANIFEST.boot.tsv (from the source tree). Timing-based, so
# an oracle check to run by hand, not a cargo test.
set -eu
BIN=${BIN:-target/debug/vmdkrecover}
W=$(mktemp -d)
T=$W/trigger
cleanup() {
    fusermount3 -u "$W/mnt" 2>/dev/null || fusermount -u "$W/mnt" 2>/dev/null || true
    [ -f "$W/pid" ] && kill "$(cat "$W/pid")" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
cp --sparse=always testdata/vm-flat.vmdk "$W/flat.raw"
mkdir "$W/mnt"
nbdkit -U "$W/sock" -P "$W/pid" --filter=error --filter=delay file "$W/flat.raw" \
    rdelay=20ms error-pread-rate=100% error-pread-file="$T" error=EIO
nbdfuse "$W/mnt/nbd" --unix "$W/sock" &
sleep 1
ln -s "$W/mnt/nbd" "$W/disk.img"
want=$(awk -F'\t' '$1=="/vmlinuz-2.6.18-398.el5"{print $6}' testdata/MANIFEST.boot.tsv)
for retries in 0 5; do
    sync; echo 3 >/proc/sys/vm/drop_caches
    rm -rf "$W/o"; mkdir "$W/o"; rm -f "$T"
    (sleep 0.25; touch "$T"; sleep 0.35; rm -f "$T") &
    trigger=$!
    rc=0
    "$BIN" cp -q --threads 1 --retries $retries "$W/disk.img" sda1:/vmlinuz-2.6.18-398.el5 "$W/o/" || rc=$?
    wait $trigger
    if [ $retries = 0 ]; then
        [ $rc = 1 ] || { echo "FAIL: without --retries the copy should fail (rc $rc)"; exit 1; }
    else
        [ $rc = 0 ] || { echo "FAIL: --retries 5 did not recover (rc $rc)"; exit 1; }
        got=$(sha256sum "$W/o/vmlinuz-2.6.18-398.el5" | cut -c1-64)
        [ "$got" = "$want" ] || { echo "FAIL: content $got, manifest $want"; exit 1; }
    fi
done
echo "ok: cp --retries recovers from a transient EIO"
