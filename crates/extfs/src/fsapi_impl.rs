//! The shared filesystem interface ([`fsapi::Filesystem`]) over this reader.
//!
//! The interface numbers inodes with `u64` (XFS needs 64 bits); ext numbers are
//! 32-bit (`s_inodes_count` is a `__le32`, Documentation/filesystems/ext4/super.rst),
//! so a number above `u32::MAX` is simply an inode that does not exist here. Errors
//! become [`fsapi::Error`]s that keep the object and, where known, the device byte
//! position: a read failure keeps its offset, and damage to an inode carries the
//! position of that inode's on-disk copy.

use crate::{DirEntry, Error, Filesystem, Inode};
use fsapi::Ino;

impl From<Error> for fsapi::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound { path } => fsapi::Error::NotFound { path },
            Error::NotADirectory { path } => fsapi::Error::NotADirectory { path },
            Error::SymlinkLoop { path } => fsapi::Error::SymlinkLoop { path },
            Error::WrongType { ino, detail } => fsapi::Error::WrongType {
                ino: u64::from(ino),
                detail,
            },
            Error::DeviceRead {
                offset,
                len,
                source,
            } => fsapi::Error::io(format!("ext device read of {len} bytes"), offset, source),
            // Every device read goes through `read_raw`, which records the position;
            // an I/O error without one can only come from elsewhere.
            Error::Io(source) => fsapi::Error::Unsupported {
                object: "ext filesystem".into(),
                detail: format!("I/O error at an unknown position: {source}"),
            },
            Error::Corrupt {
                object,
                offset,
                detail,
            } => fsapi::Error::Corrupt {
                object,
                offset,
                detail,
            },
            Error::Unsupported { object, detail } => fsapi::Error::unsupported(object, detail),
        }
    }
}

impl From<&Inode> for fsapi::Metadata {
    fn from(i: &Inode) -> Self {
        fsapi::Metadata {
            ino: u64::from(i.ino),
            mode: u32::from(i.mode),
            file_type: i.file_type,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            nlink: i.nlink,
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
            crtime: i.crtime,
            flags: u64::from(i.flags),
            rdev: i.rdev,
            generation: i.generation,
            // The kernel's ext4_file_getattr adds an inline file's bytes, rounded
            // up to sectors, to what i_blocks says (stat and ls -s show that).
            blocks: if i.flags & crate::inode::EXT4_INLINE_DATA_FL != 0
                && i.file_type == fsapi::FileType::Regular
            {
                i.blocks.saturating_add(i.size.div_ceil(512))
            } else {
                i.blocks
            },
        }
    }
}

impl From<DirEntry> for fsapi::DirEntry {
    fn from(e: DirEntry) -> Self {
        fsapi::DirEntry {
            name: e.name,
            ino: u64::from(e.ino),
            file_type: e.file_type,
        }
    }
}

impl Filesystem {
    /// The ext inode number for an interface number.
    fn ext_ino(&self, ino: Ino) -> Result<u32, fsapi::Error> {
        u32::try_from(ino).map_err(|_| {
            fsapi::Error::corrupt(
                format!("inode {ino}"),
                format!("number out of range 1..={}", self.sb.max_ino()),
            )
        })
    }

    /// Converts an error about inode `ino`, adding the position of the inode's
    /// on-disk copy when the error is about the inode itself.
    fn ino_err(&self, ino: u32, e: Error) -> fsapi::Error {
        let about_inode =
            matches!(&e, Error::Corrupt { object, .. } if *object == format!("inode {ino}"));
        let mut out = fsapi::Error::from(e);
        if about_inode {
            if let fsapi::Error::Corrupt { offset, .. } = &mut out {
                *offset = self.inode_location(ino).ok();
            }
        }
        out
    }

    /// Reads inode `ino` for an interface call.
    fn inode_for(&self, ino: Ino) -> Result<(u32, Inode), fsapi::Error> {
        let n = self.ext_ino(ino)?;
        let inode = self.inode(n).map_err(|e| self.ino_err(n, e))?;
        Ok((n, inode))
    }
}

impl fsapi::Filesystem for Filesystem {
    fn info(&self) -> fsapi::FsInfo {
        Filesystem::info(self)
    }

    fn warnings(&self) -> Vec<String> {
        Filesystem::warnings(self)
    }

    fn warning_count(&self) -> u64 {
        Filesystem::warning_count(self)
    }

    fn root(&self) -> Ino {
        u64::from(Filesystem::root(self))
    }

    fn warning_list(&self) -> Option<&fsapi::Warnings> {
        Some(&self.warnings)
    }

    fn metadata(&self, ino: Ino) -> fsapi::Result<fsapi::Metadata> {
        let (_, inode) = self.inode_for(ino)?;
        Ok(fsapi::Metadata::from(&inode))
    }

    fn read_dir(&self, ino: Ino) -> fsapi::Result<Vec<fsapi::DirEntry>> {
        let (n, inode) = self.inode_for(ino)?;
        let entries = Filesystem::read_dir(self, &inode).map_err(|e| self.ino_err(n, e))?;
        // Callers of read_dir (ls -l, cp, find, tar) look at the entries' inodes next.
        let inos: Vec<u32> = entries.iter().map(|e| e.ino).collect();
        self.prefetch_inodes(&inos);
        Ok(entries.into_iter().map(fsapi::DirEntry::from).collect())
    }

    fn read_link(&self, ino: Ino) -> fsapi::Result<Vec<u8>> {
        let (n, inode) = self.inode_for(ino)?;
        Filesystem::read_link(self, &inode).map_err(|e| self.ino_err(n, e))
    }

    fn read_at(&self, ino: Ino, offset: u64, buf: &mut [u8]) -> fsapi::Result<usize> {
        let (n, inode) = self.inode_for(ino)?;
        Filesystem::read_at(self, &inode, offset, buf).map_err(|e| self.ino_err(n, e))
    }

    fn file_runs(&self, ino: Ino) -> fsapi::Result<Vec<fsapi::FileRun>> {
        let (n, inode) = self.inode_for(ino)?;
        Filesystem::file_runs(self, &inode).map_err(|e| self.ino_err(n, e))
    }

    fn xattrs(&self, ino: Ino) -> fsapi::Result<Vec<fsapi::Xattr>> {
        let (n, inode) = self.inode_for(ino)?;
        Filesystem::xattrs(self, &inode).map_err(|e| self.ino_err(n, e))
    }

    fn read_device_at(&self, offset: u64, buf: &mut [u8]) -> fsapi::Result<()> {
        Filesystem::read_device_at(self, offset, buf).map_err(fsapi::Error::from)
    }

    fn data_host_range(
        &self,
        _ino: Ino,
        physical: u64,
        len: u64,
    ) -> Option<bytesource::HostRange<'_>> {
        Filesystem::device_host_range(self, physical, len)
    }
}
