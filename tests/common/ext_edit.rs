//! Byte-level editing of ext2/3/4 images for the crafted-input tests: locate an
//! inode and a directory's blocks from the superblock and group descriptors, and
//! recompute the metadata_csum inode checksum after an edit so the damage is
//! reached. Layouts from the kernel's fs/ext4/ext4.h (struct ext4_super_block,
//! ext4_group_desc, ext4_inode, ext4_dir_entry_2) and fs/ext4/ext4_extents.h.
#![allow(dead_code)]

pub fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
pub fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
pub fn put16(b: &mut [u8], o: usize, v: u16) {
    b[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// CRC32C (Castagnoli, reflected 0x82F63B78) without the final inversion, as
/// the kernel's crc32c_le / ext4_chksum use it.
pub fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    crc
}

pub const EXTENTS_FL: u32 = 0x8_0000;
pub const INLINE_DATA_FL: u32 = 0x1000_0000;

pub struct Ext {
    pub img: Vec<u8>,
    pub bs: usize,
    pub ipg: u32,
    pub isz: usize,
    pub inodes_count: u32,
    pub desc_size: usize,
    pub gdt: usize,
    pub csum: bool,
}

impl Ext {
    pub fn new(img: Vec<u8>) -> Ext {
        let sb = 1024;
        assert_eq!(le16(&img, sb + 0x38), 0xEF53, "not an ext superblock");
        let bs = 1024usize << le32(&img, sb + 0x18);
        let incompat = le32(&img, sb + 0x60);
        let ro = le32(&img, sb + 0x64);
        let desc_size = if incompat & 0x80 != 0 {
            le16(&img, sb + 0xFE) as usize
        } else {
            32
        };
        let first_data = le32(&img, sb + 0x14) as usize;
        Ext {
            bs,
            ipg: le32(&img, sb + 0x28),
            isz: le16(&img, sb + 0x58) as usize,
            inodes_count: le32(&img, sb),
            desc_size,
            gdt: (first_data + 1) * bs,
            csum: ro & 0x400 != 0,
            img,
        }
    }

    pub fn inode_off(&self, ino: u32) -> usize {
        let g = ((ino - 1) / self.ipg) as usize;
        let idx = ((ino - 1) % self.ipg) as usize;
        let d = self.gdt + g * self.desc_size;
        let mut table = le32(&self.img, d + 8) as u64;
        if self.desc_size >= 64 {
            table |= (le32(&self.img, d + 0x28) as u64) << 32;
        }
        table as usize * self.bs + idx * self.isz
    }

    pub fn flags(&self, ino: u32) -> u32 {
        le32(&self.img, self.inode_off(ino) + 0x20)
    }

    pub fn set_size(&mut self, ino: u32, size: u64) {
        let o = self.inode_off(ino);
        put32(&mut self.img, o + 4, size as u32);
        put32(&mut self.img, o + 0x6C, (size >> 32) as u32);
    }

    /// The file's blocks in logical order: direct blocks (ext2/3, first 12
    /// only) or a depth-0 extent tree. Enough for the small directories and
    /// files edited here.
    pub fn blocks(&self, ino: u32) -> Vec<u64> {
        let o = self.inode_off(ino);
        let ib = o + 0x28;
        let mut out = Vec::new();
        if self.flags(ino) & EXTENTS_FL != 0 {
            assert_eq!(le16(&self.img, ib), 0xF30A, "inode {ino}: extent magic");
            assert_eq!(le16(&self.img, ib + 6), 0, "inode {ino}: depth > 0");
            for i in 0..le16(&self.img, ib + 2) as usize {
                let e = ib + 12 + i * 12;
                let len = le16(&self.img, e + 4) as u64 & 0x7FFF;
                let start = ((le16(&self.img, e + 6) as u64) << 32) | le32(&self.img, e + 8) as u64;
                out.extend(start..start + len);
            }
        } else {
            for i in 0..12 {
                let b = le32(&self.img, ib + i * 4);
                if b == 0 {
                    break;
                }
                out.push(b as u64);
            }
        }
        out
    }

    /// (byte offset of the entry, inode, name) of every entry in a directory's
    /// blocks, walking rec_len.
    pub fn entries(&self, dir: u32) -> Vec<(usize, u32, Vec<u8>)> {
        let mut out = Vec::new();
        // An inline directory (fs/ext4/inline.c): i_block holds the parent's
        // inode number, then entries in the remaining 56 bytes.
        let areas: Vec<(usize, usize)> = if self.flags(dir) & INLINE_DATA_FL != 0 {
            vec![(self.inode_off(dir) + 0x28 + 4, 56)]
        } else {
            self.blocks(dir)
                .into_iter()
                .map(|b| (b as usize * self.bs, self.bs))
                .collect()
        };
        for (base, len) in areas {
            let mut off = 0;
            while off + 8 <= len {
                let e = base + off;
                let rec = le16(&self.img, e + 4) as usize;
                let nl = self.img[e + 6] as usize;
                let ino = le32(&self.img, e);
                if ino != 0 {
                    out.push((e, ino, self.img[e + 8..e + 8 + nl].to_vec()));
                }
                if rec < 8 {
                    break;
                }
                off += rec;
            }
        }
        out
    }

    pub fn lookup(&self, path: &str) -> u32 {
        let mut ino = 2;
        for c in path.split('/').filter(|c| !c.is_empty()) {
            ino = self
                .entries(ino)
                .into_iter()
                .find(|(_, _, n)| n == c.as_bytes())
                .unwrap_or_else(|| panic!("{path}: {c} not found"))
                .1;
        }
        ino
    }

    pub fn entry(&self, dir: u32, name: &str) -> usize {
        self.entries(dir)
            .into_iter()
            .find(|(_, _, n)| n == name.as_bytes())
            .unwrap_or_else(|| panic!("entry {name} not found"))
            .0
    }

    /// Recomputes the inode's metadata_csum checksum (ext4_inode_csum: seed
    /// from the fs UUID, then the inode number, the generation, and the inode
    /// with both checksum fields zero).
    pub fn fix_inode_csum(&mut self, ino: u32) {
        if !self.csum {
            return;
        }
        let sb = 1024;
        let seed = crc32c(!0, &self.img[sb + 0x68..sb + 0x78]);
        let o = self.inode_off(ino);
        let mut raw = self.img[o..o + self.isz].to_vec();
        raw[0x7C] = 0;
        raw[0x7D] = 0;
        let big = self.isz > 128 && le16(&raw, 0x80) >= 4;
        if big {
            raw[0x82] = 0;
            raw[0x83] = 0;
        }
        let gen = le32(&raw, 0x64);
        let mut c = crc32c(seed, &ino.to_le_bytes());
        c = crc32c(c, &gen.to_le_bytes());
        c = crc32c(c, &raw);
        put16(&mut self.img, o + 0x7C, c as u16);
        if big {
            put16(&mut self.img, o + 0x82, (c >> 16) as u16);
        }
    }
}
