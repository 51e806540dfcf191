#!/usr/bin/env bash
# `versions` and `diff` over several copies of the sample disk, checked against the
# kernel (root): the copies are changed through the kernel's own mount of the root
# LV (at the byte range sfdisk and lvm2's reports in testdata/LAYOUT.txt give), and
# the expected grouping comes from sha256sum and `diff -r` of kernel mounts, never
# from vmdkrecover.
#
#   A, A2  untouched copies               B  /etc/hosts rewritten, mtime changed
#   A3     hard links to A's files (the same backing bytes: read once for A and A3)
#   C      /etc/hosts removed             D  the flat file cut to 1 MiB (damaged)
#
# Prints PASS/FAIL lines and "N passed, M failed"; exit 1 on a failure.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
[ "$(id -u)" = 0 ] || { echo "SKIPPED: versions-check.sh needs root (loop mounts)"; exit 0; }
cargo build --release --quiet
B="$here/target/release/vmdkrecover"
work=$(mktemp -d)
mnt="$work/mnt"
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
passed=0
failed=0
ok() { echo "PASS $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }

# The root LV's byte range in vm-flat.vmdk: partition 2's start (sfdisk) + pe_start
# + first extent x extent size (lvm2's reports).
p2=$(awk '/vm-flat.vmdk2 :/ { gsub(/,/, ""); print $4 }' testdata/LAYOUT.txt)
pe_start=$(awk '$1 == "sda2" && $2 == "VolGroup00" { print $4 }' testdata/LAYOUT.txt)
ext=$(awk '$1 == "VolGroup00" && NF == 4 { print $3 }' testdata/LAYOUT.txt)
first=$(awk '$1 == "LogVol00" { split($6, r, "[:-]"); print r[2] }' testdata/LAYOUT.txt)
size=$(awk '$1 == "LogVol00" { print $3 }' testdata/LAYOUT.txt)
off=$((p2 * 512 + pe_start + first * ext))

for c in A A2 B C D; do
    mkdir -p "$work/$c"
    cp testdata/vm.vmdk testdata/vm-flat.vmdk "$work/$c/"
done
with_root() { # with_root COPY CMD: runs CMD with the copy's root LV mounted at $mnt
    mount -o loop,offset="$off",sizelimit="$size" "$work/$1/vm-flat.vmdk" "$mnt" || return 1
    (cd "$mnt" && eval "$2")
    local rc=$?
    umount "$mnt"
    return $rc
}
# A3: hard links to A's files, so the same backing bytes: read once for both.
mkdir -p "$work/A3"
ln "$work/A/vm.vmdk" "$work/A/vm-flat.vmdk" "$work/A3/"
with_root B 'printf "10.0.0.99 changed\n" > etc/hosts; touch -d "2026-11-30 23:00:00 UTC" etc/hosts'
with_root C 'rm etc/hosts etc/hosts.hardlink'
truncate -s 1M "$work/D/vm-flat.vmdk"
sha_a=$(with_root A 'sha256sum < etc/hosts' | cut -d' ' -f1)
sha_b=$(with_root B 'sha256sum < etc/hosts' | cut -d' ' -f1)

"$B" versions --json "$work"/{A,A2,A3,B,C,D}/vm.vmdk /etc/hosts >"$work/v.json" 2>"$work/v.err"
rc=$?
py=$(python3 - "$work" "$sha_a" "$sha_b" "$rc" <<'EOF'
import json, sys
work, sha_a, sha_b, rc = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
v = json.load(open(f"{work}/v.json"))
img = lambda c: f"{work}/{c}/vm.vmdk"
groups = [(x["sha256"], sorted(x["images"])) for x in v["versions"]]
want = [(sha_b, [img("B")]), (sha_a, sorted([img("A"), img("A2"), img("A3")]))]
old = next((x for x in v["versions"] if x["sha256"] == sha_a), {})
short = old.get("shortcut", [])
checks = [
    ("versions: newest first, grouped by the kernel's sha256", groups == want),
    ("versions: the copy without the file is listed as missing", v["missing"] == [img("C")]),
    ("versions: the damaged copy is listed with its error", [e["image"] for e in v["errors"]] == [img("D")]),
    ("versions: exit status 1 because one image could not be read", rc == 1),
    ("versions: A and its hard links A3 read once, the copy A2 read (hashed/shortcut)",
     sorted(old.get("hashed", [])) in (sorted([img("A"), img("A2")]), sorted([img("A3"), img("A2")]))
     and len(short) == 1 and {short[0]["image"], short[0]["same_as"]} == {img("A"), img("A3")}),
]
for name, good in checks:
    print(("PASS " if good else "FAIL ") + name + ("" if good else f": {json.dumps(v)} rc={rc}"))
EOF
)
echo "$py"
passed=$((passed + $(grep -c '^PASS' <<<"$py")))
failed=$((failed + $(grep -c '^FAIL' <<<"$py")))

# diff A B under /etc against diff -r of the two kernel mounts.
mkdir -p "$work/ka" "$work/kb"
with_root A "cp -a etc '$work/ka/'"
with_root B "cp -a etc '$work/kb/'"
kernel=$(diff -rq --no-dereference "$work/ka/etc" "$work/kb/etc" 2>/dev/null | sed -e "s|$work/ka||; s|$work/kb||" | awk '/^Files/ { print $2 }' | sort)
ours=$("$B" diff --content "$work/A/vm.vmdk" "$work/B/vm.vmdk" /etc 2>/dev/null | awk '$1 == "=" && /content/ { sub(/:$/, "", $2); print $2 }' | sort)
if [ -n "$kernel" ] && [ "$kernel" = "$ours" ]; then
    ok "diff --content: changed files equal diff -r of the kernel mounts ($kernel)"
else
    bad "diff --content: kernel says [$kernel], vmdkrecover [$ours]"
fi
gone=$("$B" diff "$work/A/vm.vmdk" "$work/C/vm.vmdk" /etc 2>/dev/null | awk '$1 == "-" { print $2 }' | sort | tr '\n' ' ')
if [ "$gone" = "/etc/hosts /etc/hosts.hardlink " ]; then
    ok "diff: the removed files are exactly those rm removed"
else
    bad "diff: removed [$gone]"
fi
echo "versions-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
