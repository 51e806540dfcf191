//! The volume-group model: what the metadata text becomes once checked — PVs,
//! LVs, their segments and how each segment maps LV bytes to areas — shared by
//! `vg.rs` (which builds it) and `lv.rs` (which reads through it), so neither
//! module depends on the other.
//!
//! Segment kinds and limits follow lvm2's `lib/metadata/segtype.h` and
//! `lib/format_text/import_vsn1.c`; the raid layouts are md's
//! (`drivers/md/raid5.c`).

use crate::raid6::Raid6Layout;
use bytesource::SharedSource;

/// lvm2 allows at most 128 stripes (`MAX_STRIPES`); raid at most 64 images.
pub const MAX_AREAS: u64 = 128;
/// Most segments accepted per LV.
pub const MAX_SEGMENTS: usize = 1 << 16;
/// Most LVs and PVs accepted per VG.
pub const MAX_OBJECTS: usize = 1 << 16;
/// Deepest stacking of LVs on LVs (raid1 → rimage → PV is 2).
pub const MAX_STACK: u32 = 8;

/// A PV as the VG metadata lists it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VgPv {
    /// Name in the metadata ("pv0").
    pub name: String,
    /// Uuid as lvm prints it.
    pub uuid: String,
    /// The metadata's `device` field (only a hint from the last host).
    pub device_hint: String,
    /// First data byte on the PV.
    pub pe_start: u64,
    /// Number of extents.
    pub pe_count: u64,
    /// `Device.name` of the device carrying this PV's label, when found.
    pub present_on: Option<String>,
}

/// One LV as the metadata describes it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LvInfo {
    /// LV name.
    pub name: String,
    /// LV uuid.
    pub uuid: String,
    /// Size in bytes.
    pub size: u64,
    /// False for hidden sub-LVs (`_mimage`, `_rimage`, `_tdata`, …).
    pub visible: bool,
    /// The `status` flags.
    pub status: Vec<String>,
    /// Segments in LV order.
    pub segments: Vec<SegmentInfo>,
    /// Whether the LV can be read, and why not.
    pub readable: Result<(), String>,
    /// What the LV is beyond its segments (thin pool, thin volume, snapshot…).
    pub role: LvRole,
    /// Caveats about reading it ("cache in writeback mode: …").
    pub warnings: Vec<String>,
}

/// What an LV is, from the metadata text, for listings (`info`). Names are LV
/// names of the same VG.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LvRole {
    /// A plain LV (linear, striped, mirror, raid, or a sub-LV of one).
    Plain,
    /// A thin pool (`thin-pool` segment). Open it with
    /// [`VolumeGroup::thin_pool`] for the counts in its metadata.
    ThinPool {
        /// The `_tmeta` LV.
        metadata_lv: String,
        /// The `_tdata` LV.
        data_lv: String,
        /// `chunk_size` in bytes (the superblock's data block size is trusted).
        chunk_size: u64,
        /// `transaction_id` in the VG text.
        transaction_id: u64,
        /// `zero_new_blocks`.
        zero_new_blocks: bool,
        /// The thin LVs using this pool.
        thin_lvs: Vec<String>,
    },
    /// A thin LV (`thin` segment).
    Thin {
        /// The pool LV.
        pool: String,
        /// `device_id` in the pool's metadata.
        device_id: u64,
        /// `transaction_id` when created.
        transaction_id: u64,
        /// The thin LV it is a snapshot of (only a record: it reads as itself).
        origin: Option<String>,
        /// An LV read where nothing is mapped.
        external_origin: Option<String>,
    },
    /// The COW LV of a classic snapshot: opening it reads the snapshot. It is
    /// listed visible (lvm2 shows the snapshot under this name), the `snapshotN`
    /// LV hidden.
    SnapshotCow {
        /// The hidden `snapshotN` LV holding the `snapshot` segment.
        snapshot_lv: String,
        /// The origin LV.
        origin: String,
        /// `chunk_size` in bytes.
        chunk_size: u64,
        /// Size of the snapshot as read (the origin's size at creation).
        snapshot_size: u64,
    },
    /// The hidden LV holding a `snapshot` segment (reads the same as its COW LV).
    Snapshot {
        /// The origin LV.
        origin: String,
        /// The COW LV.
        cow_store: String,
    },
    /// An LV with classic snapshots.
    Origin {
        /// COW LVs of its snapshots.
        snapshots: Vec<String>,
    },
    /// A `cache` or `writecache` LV: it reads its origin sub-LV.
    Cache {
        /// The origin sub-LV (`_corig`, `_wcorig`).
        origin: String,
        /// The cache pool or cache volume.
        cache: String,
        /// `writethrough`, `writeback`, `passthrough`, or `writecache`.
        mode: String,
    },
}

/// One segment of an LV.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// First LV extent.
    pub start_extent: u64,
    /// Number of extents.
    pub extent_count: u64,
    /// Segment type ("striped", "mirror", "raid1", "thin", …).
    pub kind: String,
    /// Stripes (striped), legs (mirror) or images (raid); 0 for others.
    pub stripe_count: u32,
    /// Stripe chunk in bytes, 0 if linear.
    pub stripe_size: u64,
    /// Areas as in the metadata ("pv0:2048", "lv_mimage_0:0", "lv_rimage_0").
    pub areas: Vec<String>,
}

/// Where one area of a segment lives.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Area {
    /// On PV `pv` (index into the VG's PVs), starting at absolute byte `offset`.
    Pv { pv: usize, offset: u64 },
    /// On LV `lv` (index), starting at byte `offset` of that LV.
    Lv { lv: usize, offset: u64 },
}

/// How a segment maps LV bytes to areas.
#[derive(Clone, Debug)]
pub(crate) enum SegMap {
    /// `striped` (linear when one area): `stripe_size` byte chunks round-robin.
    Striped { stripe_size: u64, areas: Vec<Area> },
    /// `mirror`, `raid1`: every area holds the whole segment; read the first that works.
    Mirror { legs: Vec<Area> },
    /// `raid10` (md "near" layout, `data_copies` copies of each chunk).
    Raid10 {
        stripe_size: u64,
        copies: u64,
        images: Vec<Area>,
    },
    /// `raid4`, `raid5*`: one parity chunk per row, placed by `layout`.
    Raid5 {
        stripe_size: u64,
        layout: Raid5Layout,
        images: Vec<Area>,
    },
    /// `raid6*`: P and Q chunks per row, placed by `layout`.
    Raid6 {
        stripe_size: u64,
        layout: Raid6Layout,
        images: Vec<Area>,
    },
    /// `thin-pool`: not a volume; its thin LVs are.
    ThinPool {
        meta: usize,
        data: usize,
        chunk: u64,
    },
    /// `thin`: read through the pool (opened by `open_lv`).
    Thin {
        pool: usize,
        device_id: u64,
        external_origin: Option<usize>,
    },
    /// `snapshot`: read through the COW store (opened by `open_lv`).
    Snapshot {
        origin: usize,
        cow: usize,
        chunk: u64,
    },
    /// `zero`: reads as zeros.
    Zero,
    /// `error`: every read fails.
    ErrorTarget,
    /// Not readable: `unsupported segment type X`.
    Unsupported(String),
    /// The metadata makes no sense here.
    Invalid(String),
}

/// Where md puts the parity chunk of each row (`raid5_compute_sector` in the
/// kernel's `drivers/md/raid5.c`; lvm2's `raid5` is `raid5_ls`, and its `raid4` is
/// parity on the last image, the same as `raid5_n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Raid5Layout {
    /// `ALGORITHM_LEFT_ASYMMETRIC`.
    LeftAsymmetric,
    /// `ALGORITHM_RIGHT_ASYMMETRIC`.
    RightAsymmetric,
    /// `ALGORITHM_LEFT_SYMMETRIC`.
    LeftSymmetric,
    /// `ALGORITHM_RIGHT_SYMMETRIC`.
    RightSymmetric,
    /// `ALGORITHM_PARITY_N` (and md raid4).
    ParityN,
}

impl Raid5Layout {
    pub(crate) fn from_kind(kind: &str) -> Option<Self> {
        Some(match kind {
            "raid5_la" => Self::LeftAsymmetric,
            "raid5_ra" => Self::RightAsymmetric,
            "raid5" | "raid5_ls" => Self::LeftSymmetric,
            "raid5_rs" => Self::RightSymmetric,
            "raid4" | "raid5_n" => Self::ParityN,
            _ => return None,
        })
    }

    /// For data chunk `chunk` of an array of `n` images: (row, data image, parity
    /// image). Offsets inside an image are `row * stripe_size`.
    pub(crate) fn place(self, chunk: u64, n: u64) -> Option<(u64, u64, u64)> {
        let data_disks = n.checked_sub(1).filter(|&d| d > 0)?;
        let row = chunk.checked_div(data_disks)?;
        let k = chunk.checked_rem(data_disks)?;
        let rot = row.checked_rem(n)?;
        let (pd, dd) = match self {
            Self::LeftAsymmetric => {
                let pd = data_disks.checked_sub(rot)?;
                (pd, if k >= pd { k.checked_add(1)? } else { k })
            }
            Self::RightAsymmetric => (rot, if k >= rot { k.checked_add(1)? } else { k }),
            Self::LeftSymmetric => {
                let pd = data_disks.checked_sub(rot)?;
                (pd, pd.checked_add(1)?.checked_add(k)?.checked_rem(n)?)
            }
            Self::RightSymmetric => (rot, rot.checked_add(1)?.checked_add(k)?.checked_rem(n)?),
            Self::ParityN => (data_disks, k),
        };
        Some((row, dd, pd))
    }
}

/// A segment ready to read.
#[derive(Clone, Debug)]
pub(crate) struct Seg {
    /// First LV byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    pub map: SegMap,
}

/// Everything needed to read LVs, shared by the VG and its open LVs.
pub(crate) struct VgInner {
    pub name: String,
    pub uuid: String,
    pub seqno: u64,
    pub extent_size: u64,
    pub pvs: Vec<VgPv>,
    pub pv_sources: Vec<Option<SharedSource>>,
    pub lvs: Vec<LvInfo>,
    pub lv_segs: Vec<Vec<Seg>>,
    /// Why an LV cannot be opened (unsupported or invalid), if so.
    pub lv_block: Vec<Option<Blocker>>,
    /// For a snapshot's COW LV: the LV holding its `snapshot` segment.
    pub snap_of: Vec<Option<usize>>,
}

#[derive(Clone, Debug)]
pub(crate) enum Blocker {
    Unsupported(String),
    Invalid(String),
    /// Readable in principle, but not as a volume (a thin pool).
    Refused(String),
}

/// Why a thin pool LV is not opened.
pub(crate) const POOL_REFUSED: &str = "thin pool: read its thin volumes instead";
