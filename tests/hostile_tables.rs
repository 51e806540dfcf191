//! The "hostile disks" issue, end to end through `info --json`: a partition past
//! the end of the disk is listed as unreadable (not dropped), and a self-linked
//! EBR still lets the primaries and the logical partition before it through. The
//! images are built here to the DOS layout; what is expected follows from the
//! entries written.

use std::process::Command;

fn put(d: &mut [u8], sector: usize, slot: usize, kind: u8, start: u32, len: u32) {
    let e = sector * 512 + 446 + slot * 16;
    d[e + 4] = kind;
    d[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
    d[e + 12..e + 16].copy_from_slice(&len.to_le_bytes());
    d[sector * 512 + 510] = 0x55;
    d[sector * 512 + 511] = 0xaa;
}

fn info(image: &[u8]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    std::fs::write(&path, image).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmdkrecover"))
        .args(["info", "--json", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn partition_past_the_end_is_listed_unreadable_and_self_linked_ebr_keeps_the_rest() {
    // 8192 sectors (4 MiB). 1: 2048+2048, fine. 2: extended at 4096 for 4096
    // sectors, whose only EBR holds logical 5 (4097+1024) and links to itself.
    // 4: 6144+8192, past the end.
    let mut d = vec![0u8; 8192 * 512];
    put(&mut d, 0, 0, 0x83, 2048, 2048);
    put(&mut d, 0, 1, 0x05, 4096, 4096);
    put(&mut d, 0, 3, 0x8e, 6144, 8192);
    put(&mut d, 4096, 0, 0x83, 1, 1024);
    put(&mut d, 4096, 1, 0x05, 0, 4096);
    let v = info(&d);
    let parts = v["disks"][0]["partitions"].as_array().unwrap();
    let got: Vec<(u64, u64, u64, bool)> = parts
        .iter()
        .map(|p| {
            (
                p["number"].as_u64().unwrap(),
                p["start"].as_u64().unwrap() / 512,
                p["size"].as_u64().unwrap() / 512,
                p["readable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1, 2048, 2048, true),
            (2, 4096, 4096, true),
            (4, 6144, 8192, false),
            (5, 4097, 1024, true),
        ]
    );
    let volumes: Vec<(&str, bool)> = v["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["unreadable"].is_string()))
        .collect();
    for want in [("sda1", false), ("sda4", true), ("sda5", false)] {
        assert!(volumes.contains(&want), "{want:?} in {volumes:?}");
    }
    let warnings = v["warnings"].to_string();
    assert!(warnings.contains("a loop"), "{warnings}");
    assert!(warnings.contains("partition 4"), "{warnings}");
}
