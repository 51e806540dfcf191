//! The hosted sparse extent header (`KDMV`): the first sector of a monolithicSparse
//! file, of each piece of a twoGbMaxExtentSparse disk and of a streamOptimized file
//! (whose footer carries a second copy, see [`crate::stream`]).
//!
//! Layout from VMware "Virtual Disk Format 5.0", "Hosted Sparse Extent Header"
//! (qemu `VMDK4Header`, libyal libvmdk "Sparse extent file header"), all little-endian:
//!
//! ```text
//!  0 magicNumber u32 'KDMV'   4 version u32        8 flags u32
//! 12 capacity u64 (sectors)  20 grainSize u64      28 descriptorOffset u64
//! 36 descriptorSize u64      44 numGTEsPerGT u32   48 rgdOffset u64
//! 56 gdOffset u64            64 overHead u64       72 uncleanShutdown u8
//! 73 '\n' ' ' '\r' '\n'      77 compressAlgorithm u16
//! ```
//!
//! flags: bit 0 newline test valid, bit 1 redundant grain directory in use, bit 2
//! zeroed-grain GTEs, bit 16 compressed grains, bit 17 markers. A `gdOffset` of
//! [`GD_AT_END`] (all ones) means the real header is the footer near the end of the
//! file. Opening the extent the header describes is [`crate::sparse`]'s job.

use crate::error::need;
use crate::Error;
use bytesource::field::{le_u16, le_u32, le_u64};

/// `KDMV` read as a little-endian u32.
pub(crate) const MAGIC: u32 = 0x564d_444b;
/// `gdOffset` of a streamOptimized file's first header: look in the footer.
pub(crate) const GD_AT_END: u64 = u64::MAX;
/// flags bit 17: each compressed grain starts with a grain marker.
pub(crate) const FLAG_MARKERS: u32 = 1 << 17;

/// The fields of a hosted sparse header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) version: u32,
    pub(crate) flags: u32,
    pub(crate) capacity: u64,
    pub(crate) grain_size: u64,
    pub(crate) descriptor_offset: u64,
    pub(crate) descriptor_size: u64,
    pub(crate) num_gtes_per_gt: u32,
    pub(crate) rgd_offset: u64,
    pub(crate) gd_offset: u64,
    pub(crate) overhead: u64,
    pub(crate) compress_algorithm: u16,
}

impl Header {
    /// Decodes the header in `b`, which was read from byte `at` of file `name`:
    /// `Ok(None)` when the magic is not `KDMV`, an error naming the field's byte
    /// position when `b` is too short to hold it (every caller reads a whole
    /// 512-byte sector, so that is a bug, not a hostile image).
    pub(crate) fn parse(b: &[u8], name: &str, at: u64) -> Result<Option<Header>, Error> {
        const WHAT: &str = "sparse extent header";
        let u32f = |off: usize| need(le_u32(b, off), name, WHAT, at, off);
        let u64f = |off: usize| need(le_u64(b, off), name, WHAT, at, off);
        if u32f(0)? != MAGIC {
            return Ok(None);
        }
        Ok(Some(Header {
            version: u32f(4)?,
            flags: u32f(8)?,
            capacity: u64f(12)?,
            grain_size: u64f(20)?,
            descriptor_offset: u64f(28)?,
            descriptor_size: u64f(36)?,
            num_gtes_per_gt: u32f(44)?,
            rgd_offset: u64f(48)?,
            gd_offset: u64f(56)?,
            overhead: u64f(64)?,
            compress_algorithm: need(le_u16(b, 77), name, WHAT, at, 77)?,
        }))
    }
}
