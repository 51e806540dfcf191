//! Extended attributes and ACLs against `getfattr -d -m - -e hex` run on a kernel
//! mount of each fixture (the generic posix_acl xattr format is what the kernel
//! hands to user space).

mod common;

use std::collections::BTreeMap;

use common::*;

/// Parses getfattr's hex dump: file -> name -> value.
fn parse_getfattr(text: &str) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out: BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(f) = line.strip_prefix("# file: ") {
            cur = f.to_string();
            out.entry(cur.clone()).or_default();
        } else if !line.is_empty() {
            let (name, value) = match line.split_once('=') {
                Some((n, v)) => {
                    let v = v.strip_prefix("0x").expect("hex value");
                    let bytes = (0..v.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap())
                        .collect();
                    (n, bytes)
                }
                None => (line, Vec::new()),
            };
            out.entry(cur.clone())
                .or_default()
                .insert(name.as_bytes().to_vec(), value);
        }
    }
    out
}

fn check(name: &str) {
    let dir = data_dir();
    let text = std::fs::read_to_string(dir.join(format!("{name}.xattrs"))).unwrap();
    let want = parse_getfattr(&text);
    assert!(
        want.len() >= 3,
        "{name}: getfattr dump has {} files",
        want.len()
    );
    let img = load_image(&dir.join(format!("{name}.img.gz"))).unwrap();
    let fs = open_mem(img, true).unwrap();
    for (file, attrs) in &want {
        let ino = fs.lookup(format!("/{file}").as_bytes()).unwrap();
        let inode = fs.inode(ino).unwrap();
        let got: BTreeMap<Vec<u8>, Vec<u8>> = fs
            .xattrs(&inode)
            .unwrap()
            .into_iter()
            .map(|x| (x.name, x.value))
            .collect();
        assert_eq!(&got, attrs, "{name}: {file}");
    }
    let acl = want.get("acl/file").expect("acl/file in dump");
    assert!(acl.contains_key(&b"system.posix_acl_access"[..]));
}

#[test]
fn xattrs_match_getfattr() {
    for name in [
        "ext2-1k",
        "ext3-128",
        "ext4",
        "ext4-64bit-csum",
        "ext4-inline",
        "ext4-bigalloc",
        "ext4-meta-bg",
    ] {
        check(name);
    }
}
