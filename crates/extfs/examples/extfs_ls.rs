//! Debugging aid: `cargo run -p extfs --example extfs_ls -- IMAGE [PATH] [--no-replay]`
//! prints the superblock summary, warnings and a recursive listing (raw images only).

use std::sync::Arc;

use bytesource::{FileSource, SharedSource};
use extfs::{FileType, Filesystem, OpenOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(image) = args.first() else {
        eprintln!("usage: extfs_ls IMAGE [PATH] [--no-replay]");
        std::process::exit(2);
    };
    let replay = !args.iter().any(|a| a == "--no-replay");
    let path = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "/".into());
    let src: SharedSource = match FileSource::open(image) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{image}: {e}");
            std::process::exit(2);
        }
    };
    let fs = match Filesystem::open(
        src,
        &OpenOptions {
            replay_journal: replay,
        },
    ) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("{image}: {e}");
            std::process::exit(2);
        }
    };
    println!("{:#?}", fs.info());
    if let Some(out) = args.iter().find_map(|a| a.strip_prefix("--export=")) {
        // Writes the device as this reader sees it (journal replayed in memory).
        let len = usize::try_from(fs.info().blocks * u64::from(fs.info().block_size)).unwrap_or(0);
        let mut buf = vec![0u8; len];
        if let Err(e) = fs.read_device_at(0, &mut buf) {
            eprintln!("export: {e}");
        }
        if let Err(e) = std::fs::write(out, &buf) {
            eprintln!("{out}: {e}");
        }
    }
    let ino = match fs.lookup(path.as_bytes()) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    list(&fs, ino, &path, 0);
    for w in fs.warnings() {
        println!("warning: {w}");
    }
}

fn list(fs: &Filesystem, ino: u32, path: &str, depth: usize) {
    let inode = match fs.inode(ino) {
        Ok(i) => i,
        Err(e) => {
            println!("{path}: {e}");
            return;
        }
    };
    let extra = match inode.file_type {
        FileType::Symlink => match fs.read_link(&inode) {
            Ok(t) => format!(" -> {}", String::from_utf8_lossy(&t)),
            Err(e) => format!(" -> ({e})"),
        },
        _ => String::new(),
    };
    println!(
        "{:>8} {:06o} {:>5}:{:<5} {:>10} {path}{extra}",
        inode.ino, inode.mode, inode.uid, inode.gid, inode.size
    );
    if inode.file_type != FileType::Directory || depth > 32 {
        return;
    }
    match fs.read_dir(&inode) {
        Ok(entries) => {
            for e in entries {
                let child = format!(
                    "{}/{}",
                    path.trim_end_matches('/'),
                    String::from_utf8_lossy(&e.name)
                );
                list(fs, e.ino, &child, depth + 1);
            }
        }
        Err(e) => println!("{path}: {e}"),
    }
}
