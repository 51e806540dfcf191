//! Fuzzes opening a text descriptor from a folder (`vmdk::Disk::open_with`): extent
//! and parent name resolution, the renamed-copy search (a flat file of 4 KiB and a
//! sparse-looking `-s001.vmdk` sit beside it), `extent_map`, the per-open file
//! sharing and the extent-line cap. The input is written as `d.vmdk`; errors are
//! fine, panics, hangs and huge allocations are not.
#![no_main]

use bytesource::ByteSource;
use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vmdk-open-dir-fuzz-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&d);
        let _ = std::fs::write(d.join("d-flat.vmdk"), vec![0x5au8; 4096]);
        let mut kdmv = vec![0u8; 1024];
        kdmv[..4].copy_from_slice(b"KDMV");
        let _ = std::fs::write(d.join("r-s001.vmdk"), kdmv);
        let _ = std::fs::write(d.join("p.vmdk"), "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"d-flat.vmdk\" 0\n");
        d
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let d = dir();
    let p = d.join("d.vmdk");
    if std::fs::write(&p, data).is_err() {
        return;
    }
    let opts = vmdk::OpenOptions {
        extent_map: vec![("mapped.vmdk".into(), d.join("d-flat.vmdk"))],
        ..vmdk::OpenOptions::default()
    };
    let Ok(disk) = vmdk::Disk::open_with(&p, &opts) else {
        return;
    };
    let _ = disk.allocation(0, disk.len().min(1 << 30));
    let mut buf = vec![0u8; 64 * 1024];
    let n = disk.len().min(buf.len() as u64) as usize;
    let _ = disk.read_at(0, &mut buf[..n]);
});
