#![allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod common;
use fsapi::Filesystem as _;
#[test]
#[ignore]
fn explore() {
    let p = std::env::var("IMG").unwrap();
    let fs = common::open(std::path::Path::new(&p));
    println!("{:?}", fs.info());
    let w = common::walk(&fs);
    for (p, (ino, t)) in w.iter().filter(|(p, _)| p.len() < 60 && p.iter().filter(|&&c| c == b'/').count() <= 2) {
        let m = fs.metadata(*ino).unwrap();
        let extra = match t {
            fsapi::FileType::Symlink => {
                String::from_utf8_lossy(&fs.read_link(*ino).unwrap()).into_owned()
            }
            fsapi::FileType::Regular if m.size < (64 << 20) => format!(
                "{:?}",
                common::sha256_of(&fs, *ino).map(|s| s[..8].to_string())
            ),
            _ => String::new(),
        };
        let x = fs.xattrs(*ino).map(|v| v.len());
        println!(
            "{} {ino} {t:?} {:o} {} {} {:?} x={x:?}",
            String::from_utf8_lossy(p),
            m.mode,
            m.size,
            extra,
            m.mtime
        );
    }
    println!("entries {}", w.len());
    for w in fs.warnings().iter().take(30) {
        println!("W: {w}");
    }
}
