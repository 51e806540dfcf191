//! The fixtures of `scripts/fixtures/partitions.sh`, made by sfdisk, sgdisk and (for
//! what no tool writes) `gpt_tool.py`, checked against the tools' own readings of
//! the same images: `sfdisk -J` (util-linux libfdisk) and `sgdisk -v/-p` (GPT fdisk),
//! recorded by the script next to each image. No expected value comes from this crate.

use bytesource::MemSource;
use partitions::{EbrFault, GptFault, Partition, Table, TableKind, Warning};
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data")).join(name)
}

fn image(name: &str) -> MemSource {
    let raw = std::fs::read(data(&format!("{name}.img.gz"))).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    MemSource::new(out)
}

fn text(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

/// One partition as an oracle describes it, in bytes.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Expect {
    number: u32,
    start: u64,
    size: u64,
    /// MBR: the type byte in hex ("83"); GPT: the type GUID, lowercase.
    kind: String,
    uuid: Option<String>,
    name: Option<String>,
    attrs: u64,
    bootable: bool,
}

/// sfdisk's "attrs" text to bits: RequiredPartition = bit 0, NoBlockIOProtocol = 1,
/// LegacyBIOSBootable = 2, "GUID:a,b" = bits a and b (sfdisk(8), "GPT attributes").
fn attr_bits(s: &str) -> u64 {
    let mut bits = 0;
    for word in s.split_whitespace() {
        match word {
            "RequiredPartition" => bits |= 1,
            "NoBlockIOProtocol" => bits |= 2,
            "LegacyBIOSBootable" => bits |= 4,
            w => {
                for n in w.strip_prefix("GUID:").unwrap().split(',') {
                    bits |= 1u64 << n.parse::<u32>().unwrap();
                }
            }
        }
    }
    bits
}

/// The partitions `sfdisk -J` lists (node "IMG5" / "IMGp5" is partition 5).
fn sfdisk(name: &str) -> (String, u64, Vec<Expect>) {
    let v: Value = serde_json::from_str(&text(&format!("{name}.sfdisk.json"))).unwrap();
    let t = &v["partitiontable"];
    let ss = t["sectorsize"].as_u64().unwrap();
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let digits = node.trim_start_matches(|c: char| !c.is_ascii_digit());
            Expect {
                number: digits.parse().unwrap(),
                start: p["start"].as_u64().unwrap() * ss,
                size: p["size"].as_u64().unwrap() * ss,
                kind: p["type"].as_str().unwrap().to_ascii_lowercase(),
                uuid: p["uuid"].as_str().map(|u| u.to_ascii_lowercase()),
                name: p["name"].as_str().map(str::to_string),
                attrs: p["attrs"].as_str().map(attr_bits).unwrap_or(0),
                bootable: p["bootable"].as_bool().unwrap_or(false),
            }
        })
        .collect();
    (t["label"].as_str().unwrap().to_string(), ss, parts)
}

fn ours(p: &Partition) -> Expect {
    Expect {
        number: p.number,
        start: p.start,
        size: p.size,
        kind: match (p.mbr_type, p.type_guid) {
            (Some(t), _) => format!("{t:x}"),
            (None, Some(g)) => g.to_string(),
            (None, None) => panic!("partition without a type"),
        },
        uuid: p.part_uuid.map(|g| g.to_string()),
        name: p.gpt_name.clone(),
        attrs: p.attributes,
        // sfdisk reports the MBR active flag only; for GPT it is attribute bit 2.
        bootable: p.mbr_type.is_some() && p.bootable,
    }
}

fn sorted(mut v: Vec<Expect>) -> Vec<Expect> {
    v.sort_by_key(|e| e.number);
    v
}

/// Reads `name` and checks every partition against `sfdisk -J` of the same image.
fn matches_sfdisk(name: &str) -> Table {
    let disk = image(name);
    let t = partitions::detect(&disk).unwrap().unwrap();
    let (label, ss, want) = sfdisk(name);
    let kind = match label.as_str() {
        "dos" => TableKind::Mbr,
        "gpt" => TableKind::Gpt,
        l => panic!("{l}"),
    };
    assert_eq!(t.kind, kind, "{name}");
    assert_eq!(t.sector_size, ss, "{name}");
    let got: Vec<Expect> = t.partitions.iter().map(ours).collect();
    assert_eq!(sorted(got), sorted(want), "{name}: {:#?}", t.warnings);
    t
}

fn past_end_numbers(t: &Table) -> Vec<u32> {
    t.warnings
        .iter()
        .filter_map(|w| match w {
            Warning::PastEnd { number, .. } => Some(*number),
            _ => None,
        })
        .collect()
}

#[test]
fn mbr_with_extended_and_logicals() {
    let t = matches_sfdisk("mbr");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert!(t.partitions.iter().all(|p| p.readable));
    let ext: Vec<u32> = t
        .partitions
        .iter()
        .filter(|p| p.extended)
        .map(|p| p.number)
        .collect();
    assert_eq!(ext, [3], "sfdisk lists partition 3 with type 5");
}

#[test]
fn gpt_names_attributes_types_and_slot_gap() {
    let t = matches_sfdisk("gpt");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert!(!t.hybrid);
    let v: Value = serde_json::from_str(&text("gpt.sfdisk.json")).unwrap();
    let id = v["partitiontable"]["id"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert_eq!(t.disk_guid.unwrap().to_string(), id);
    // sfdisk's attrs "LegacyBIOSBootable" on partition 2 is our bootable flag.
    let boot: Vec<u32> = t
        .partitions
        .iter()
        .filter(|p| p.bootable)
        .map(|p| p.number)
        .collect();
    assert_eq!(boot, [2]);
}

/// `sgdisk -i N` ("Partition GUID code", "Partition unique GUID") agrees with
/// every partition's type GUID and PARTUUID.
#[test]
fn gpt_guids_match_sgdisk_info() {
    let t = partitions::detect(&image("gpt")).unwrap().unwrap();
    let out = text("gpt.sgdisk.txt");
    for part in out.split("### sgdisk -i ").skip(1) {
        let n: u32 = part.lines().next().unwrap().trim().parse().unwrap();
        let code = part
            .lines()
            .find_map(|l| l.strip_prefix("Partition GUID code: "))
            .unwrap();
        let guid = code.split_whitespace().next().unwrap().to_ascii_lowercase();
        let uniq = part
            .lines()
            .find_map(|l| l.strip_prefix("Partition unique GUID: "))
            .unwrap()
            .trim()
            .to_ascii_lowercase();
        let p = t.partitions.iter().find(|p| p.number == n).unwrap();
        assert_eq!(p.type_guid.unwrap().to_string(), guid, "partition {n}");
        assert_eq!(p.part_uuid.unwrap().to_string(), uniq, "partition {n}");
    }
}

#[test]
fn gpt_on_4096_byte_sectors() {
    let t = matches_sfdisk("gpt4k");
    assert_eq!(t.sector_size, 4096);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn gpt_with_256_byte_entries() {
    // sgdisk refuses the size ("supports only 128-byte entries": recorded), so
    // sfdisk (libfdisk) is the oracle here.
    assert!(text("gpt256.sgdisk.txt").contains("entries is 256 bytes"));
    let t = matches_sfdisk("gpt256");
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn hybrid_mbr_gpt_wins_and_is_reported() {
    let t = matches_sfdisk("hybrid");
    assert!(t.hybrid);
    // `sgdisk -O` (hybrid.mbr.txt) lists the MBR side: the 0xEE entry plus the
    // partitions `sgdisk -h` copied into it.
    let mbr_side = text("hybrid.mbr.txt");
    let others = mbr_side
        .lines()
        .filter(|l| l.contains(" primary ") && !l.contains("0xEE"))
        .count();
    assert!(others > 0);
    assert!(
        t.warnings.contains(&Warning::HybridMbr { others }),
        "{:?}",
        t.warnings
    );
}

#[test]
fn primary_header_claiming_2_pow_31_entries_falls_back_to_the_backup() {
    // libfdisk: "The primary GPT table is corrupt, but the backup appears OK";
    // sgdisk dies of std::bad_alloc on this image (both recorded).
    assert!(text("gpt-hugecount.sfdisk.stderr").contains("backup appears OK"));
    assert!(text("gpt-hugecount.sgdisk.txt").contains("bad_alloc"));
    let t = matches_sfdisk("gpt-hugecount");
    assert!(t.gpt_backup_used);
    assert!(
        t.warnings.iter().any(|w| matches!(
            w,
            Warning::GptPrimaryDamaged {
                fault: GptFault::EntryArray {
                    count: 0x8000_0000,
                    ..
                },
                ..
            }
        )),
        "{:?}",
        t.warnings
    );
    // And it lists what the undamaged original lists.
    let (_, _, orig) = sfdisk("gpt");
    assert_eq!(t.partitions.len(), orig.len());
}

#[test]
fn corrupt_primary_entry_array_falls_back_to_the_backup() {
    let sg = text("gpt-badentries.sgdisk.txt");
    assert!(sg.contains("Main header: OK") && sg.contains("Main partition table: ERROR"));
    assert!(text("gpt-badentries.sfdisk.stderr").contains("backup appears OK"));
    let t = matches_sfdisk("gpt-badentries");
    assert!(t.gpt_backup_used);
    assert!(
        t.warnings.iter().any(|w| matches!(
            w,
            Warning::GptPrimaryDamaged {
                fault: GptFault::EntriesCrc { offset: 1024, .. },
                ..
            }
        )),
        "{:?}",
        t.warnings
    );
}

/// The partition list `sgdisk -p` prints (it reads MBRs too, converting in memory):
/// (number, first sector, last sector).
fn sgdisk_list(name: &str) -> Vec<(u32, u64, u64)> {
    let out = text(&format!("{name}.sgdisk.txt"));
    let p = out.split("### sgdisk -p").nth(1).unwrap();
    let p = p.split("### sgdisk -i").next().unwrap();
    p.lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect()
}

/// A damaged EBR chain: sgdisk detects the loop and keeps what came before
/// (libfdisk does not: it repeats the looping partition up to its cap of 60, as
/// its recorded output shows), so sgdisk's list is the oracle, plus the extended
/// container sgdisk does not list (from sfdisk's reading of the undamaged image).
fn ebr_damage(name: &str, logicals_kept: usize) {
    let out = text(&format!("{name}.sgdisk.txt"));
    assert!(out.contains("infinite loop detected"), "{name}");
    let t = partitions::detect(&image(name)).unwrap().unwrap();
    let got: Vec<(u32, u64, u64)> = t
        .partitions
        .iter()
        .filter(|p| !p.extended)
        .map(|p| (p.number, p.first_sector, p.first_sector + p.sectors - 1))
        .collect();
    let mut want = sgdisk_list(name);
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want, "{name}");
    assert_eq!(got.iter().filter(|p| p.0 >= 5).count(), logicals_kept);
    let (_, _, orig) = sfdisk("mbr");
    let ext = orig.iter().find(|e| e.kind == "5").unwrap();
    assert!(t
        .partitions
        .iter()
        .any(|p| p.extended && p.number == ext.number && p.start == ext.start));
    assert!(
        t.warnings.iter().any(|w| matches!(
            w,
            Warning::EbrChain {
                fault: EbrFault::Loop,
                ..
            }
        )),
        "{:?}",
        t.warnings
    );
}

#[test]
fn self_linked_ebr_keeps_primaries_and_earlier_logicals() {
    ebr_damage("mbr-selfloop", 2);
}

#[test]
fn ebr_loop_of_two_keeps_primaries_and_earlier_logicals() {
    ebr_damage("mbr-loop2", 3);
}

#[test]
fn partitions_past_the_end_are_listed_as_unreadable() {
    // The 16 MiB mbr image cut to 12 MiB: sfdisk lists 1-7 and fails on the EBR of
    // 8 ("Failed to read extended partition table (offset=24576)", recorded).
    assert!(text("mbr-short.sfdisk.stderr").contains("offset=24576"));
    let disk = image("mbr-short");
    let t = matches_sfdisk("mbr-short");
    let (_, _, want) = sfdisk("mbr-short");
    let len = bytesource::ByteSource::len(&disk);
    let mut beyond: Vec<u32> = want
        .iter()
        .filter(|e| e.start + e.size > len)
        .map(|e| e.number)
        .collect();
    beyond.sort();
    let mut flagged: Vec<u32> = t
        .partitions
        .iter()
        .filter(|p| !p.readable)
        .map(|p| p.number)
        .collect();
    flagged.sort();
    assert_eq!(flagged, beyond);
    assert_eq!(past_end_numbers(&t), beyond);
    assert!(t.warnings.iter().any(|w| matches!(
        w,
        Warning::EbrChain {
            offset: 12582912,
            fault: EbrFault::Outside,
            ..
        }
    )));
}

/// Every type name in our tables is the name libfdisk gives it (`sfdisk -T`).
#[test]
fn type_names_match_sfdisk() {
    let gpt = text("sfdisk-types-gpt.txt");
    for (guid, name) in partitions::guid::known_gpt_types() {
        let line = gpt
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(guid))
            .unwrap_or_else(|| panic!("{guid} not in sfdisk -T"));
        assert_eq!(line[36..].trim(), *name, "{guid}");
    }
    let dos = text("sfdisk-types-dos.txt");
    for t in 0..=255u8 {
        let ours = partitions::guid::mbr_type_name(t);
        if ours == "unknown" {
            continue;
        }
        let line = dos
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&format!("{t:x}")))
            .unwrap_or_else(|| panic!("{t:#x} not in sfdisk -T"));
        let theirs = line.trim_start().split_once(char::is_whitespace).unwrap().1;
        assert_eq!(theirs.trim(), ours, "{t:#x}");
    }
}

fn bytes_of(name: &str) -> Vec<u8> {
    let raw = std::fs::read(data(&format!("{name}.img.gz"))).unwrap();
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn gpt_without_mbr_signature_is_still_read() {
    let mut d = bytes_of("gpt");
    d[510] = 0;
    d[511] = 0;
    let t = partitions::detect(&MemSource::new(d)).unwrap().unwrap();
    assert_eq!(t.kind, TableKind::Gpt);
    let (_, _, want) = sfdisk("gpt");
    assert_eq!(
        sorted(t.partitions.iter().map(ours).collect()),
        sorted(want)
    );
    assert!(t.warnings.contains(&Warning::NoProtectiveMbr));
}

#[test]
fn hybrid_with_both_gpt_copies_gone_uses_its_mbr_entries() {
    let mut d = bytes_of("hybrid");
    let len = d.len();
    d[512..520].fill(0); // primary header signature
    d[len - 512..len - 504].fill(0); // backup header signature
    let t = partitions::detect(&MemSource::new(d)).unwrap().unwrap();
    assert_eq!(t.kind, TableKind::Mbr);
    assert!(t.hybrid);
    // sgdisk -O (hybrid.mbr.txt): "Number Boot Start End Status Code" rows.
    let mut want: Vec<(u32, u64, u64, u8)> = text("hybrid.mbr.txt")
        .lines()
        .filter(|l| l.contains(" primary ") && !l.contains("0xEE"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let code = u8::from_str_radix(f[f.len() - 1].trim_start_matches("0x"), 16).unwrap();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                code,
            )
        })
        .collect();
    want.sort();
    let got: Vec<(u32, u64, u64, u8)> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.number,
                p.first_sector,
                p.first_sector + p.sectors - 1,
                p.mbr_type.unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(matches!(
        t.warnings.first(),
        Some(Warning::GptUnusableUsingMbr(partitions::Error::Gpt { .. }))
    ));
}

/// A disk whose reads fail with EIO where they touch `[bad.0, bad.1)`, as a
/// failing disk's (or a FUSE page holding a bad sector) would.
struct Failing {
    inner: MemSource,
    bad: (u64, u64),
}

impl bytesource::ByteSource for Failing {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset + buf.len() as u64;
        if offset < self.bad.1 && self.bad.0 < end {
            return Err(std::io::Error::from_raw_os_error(5));
        }
        self.inner.read_at(offset, buf)
    }
}

/// Reads the sgdisk-made GPT with `bad` unreadable; the partitions must be the
/// ones `sfdisk -J` lists for the intact image (read from the backup).
fn gpt_with_bad(bad: (u64, u64)) -> Table {
    let disk = Failing {
        inner: image("gpt"),
        bad,
    };
    let t = partitions::detect(&disk).unwrap().unwrap();
    let (_, ss, want) = sfdisk("gpt");
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.sector_size, ss);
    let got: Vec<Expect> = t.partitions.iter().map(ours).collect();
    assert_eq!(sorted(got), sorted(want), "{:#?}", t.warnings);
    assert!(t.gpt_backup_used);
    t
}

#[test]
fn unreadable_primary_gpt_falls_back_to_the_backup() {
    // LBA 1-33: the primary header and its entry array (sgdisk's layout).
    let t = gpt_with_bad((512, 34 * 512));
    let w: Vec<&Warning> = t.warnings.iter().filter(|w| w.is_read_error()).collect();
    assert_eq!(w.len(), 1, "{:#?}", t.warnings);
    assert!(matches!(
        w[0],
        Warning::GptPrimaryDamaged {
            fault: GptFault::Unreadable { offset: 512, .. },
            ..
        }
    ));
    let text = w[0].to_string();
    assert!(
        text.contains("unreadable") && text.contains("backup"),
        "{text}"
    );
    // Only the entry array unreadable: the same.
    let t = gpt_with_bad((2 * 512, 34 * 512));
    assert!(t.warnings.iter().any(|w| matches!(
        w,
        Warning::GptPrimaryDamaged {
            fault: GptFault::Unreadable { offset: 1024, .. },
            ..
        }
    )));
}

#[test]
fn unreadable_sector_0_still_finds_the_backup_gpt() {
    // FUSE reads in 4 KiB pages: a bad primary GPT takes sector 0 with it.
    let t = gpt_with_bad((0, 34 * 512));
    assert!(matches!(
        t.warnings.first(),
        Some(Warning::MbrUnreadable { .. })
    ));
    assert!(
        t.warnings.iter().all(|w| w.is_read_error()),
        "{:#?}",
        t.warnings
    );
}

#[test]
fn both_gpt_copies_unreadable_is_an_error_naming_both() {
    let disk = Failing {
        inner: image("gpt"),
        bad: (512, u64::MAX),
    };
    let e = partitions::detect(&disk).unwrap_err();
    assert!(e.is_read_error(), "{e}");
    let t = partitions::read_table(&disk);
    assert_eq!(t.kind, TableKind::None);
    assert!(t.warnings.iter().any(|w| w.is_read_error()));
}
