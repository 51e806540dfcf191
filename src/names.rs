//! The one rule for names that come from an image, used by every command that turns
//! them into paths somewhere else (`cp` into DEST, `tar` into an archive, `mount`
//! into the kernel's view), and by the walks `find` and `ls -R --json` report.
//!
//! A name must be a single ordinary path component: not empty, not `.` or `..`,
//! without `/` or NUL. Anything else would let a hostile image write outside DEST,
//! make an archive that extracts through a symlink (`n/aa -> /tmp/x`, then
//! `n/aa/keep`), or show the kernel a name it cannot represent. The filesystem
//! readers already drop the real `.` and `..`; a name that fails here is refused,
//! reported as a warning naming the directory, and makes the exit status 1.

use crate::cmd::show_name;
use std::collections::BTreeSet;

/// Why a name from the image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Not a single safe path component.
    #[error("unsafe file name \"{0}\" in the image (empty, `.`, `..`, or containing `/` or NUL); skipped")]
    Unsafe(String),
    /// The same name twice in one directory.
    #[error("duplicate name \"{0}\" in the directory; only the first is kept")]
    Duplicate(String),
}

/// True when `name` is a single safe path component.
pub fn is_safe(name: &[u8]) -> bool {
    !(name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0))
}

/// Checks one name.
pub fn check(name: &[u8]) -> Result<(), Refused> {
    if is_safe(name) {
        Ok(())
    } else {
        Err(Refused::Unsafe(show_name(name)))
    }
}

/// Checks the names of one directory's entries in order: unsafe names and every
/// repeat of a name already seen are refused.
#[derive(Default)]
pub struct DirNames {
    /// Ordered, not hashed: no SipHash of every name (`ls` admits each entry of
    /// the directory it lists).
    seen: BTreeSet<Vec<u8>>,
}

impl DirNames {
    /// A fresh directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `name` (remembering it) or says why not.
    pub fn admit(&mut self, name: &[u8]) -> Result<(), Refused> {
        check(name)?;
        if !self.seen.insert(name.to_vec()) {
            return Err(Refused::Duplicate(show_name(name)));
        }
        Ok(())
    }
}

/// [`DirNames`] for names that come in sorted order (byte order, as the copy's
/// walk sorts each directory): a repeat is always the name just before, so only
/// that one is kept. Copying `/usr/share` out of a far disk, the set of every name
/// of its largest directory (18,000 entries) held 1.5 MiB at the peak of memory
/// (heaptrack), one small allocation per name.
#[derive(Default)]
pub struct SortedDirNames {
    last: Option<Vec<u8>>,
}

impl SortedDirNames {
    /// A fresh directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts `name` or says why not; `name` must not sort before the name
    /// admitted last (checked in debug builds).
    pub fn admit(&mut self, name: &[u8]) -> Result<(), Refused> {
        check(name)?;
        match &mut self.last {
            Some(last) if last.as_slice() == name => Err(Refused::Duplicate(show_name(name))),
            Some(last) => {
                debug_assert!(last.as_slice() < name, "names admitted out of order");
                last.clear();
                last.extend_from_slice(name);
                Ok(())
            }
            None => {
                self.last = Some(name.to_vec());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b", b"aa/keep"] {
            assert!(!is_safe(bad), "{bad:?}");
        }
        for good in [&b"a"[..], b"...", b".hidden", b"a b", b"\xff\xfe", b"a\\b"] {
            assert!(is_safe(good), "{good:?}");
        }
        let mut d = DirNames::new();
        assert!(d.admit(b"x").is_ok());
        assert!(matches!(d.admit(b"x"), Err(Refused::Duplicate(_))));
        assert!(matches!(d.admit(b".."), Err(Refused::Unsafe(_))));
        // Sorted names: the same verdicts.
        let mut d = SortedDirNames::new();
        assert!(d.admit(b"a").is_ok());
        assert!(matches!(d.admit(b"a"), Err(Refused::Duplicate(_))));
        assert!(matches!(d.admit(b"a/b"), Err(Refused::Unsafe(_))));
        assert!(d.admit(b"b").is_ok());
        assert!(matches!(d.admit(b"b"), Err(Refused::Duplicate(_))));
        assert!(d.admit(b"c").is_ok());
    }
}
