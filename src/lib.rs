//! vmdkrecover: the pipeline and the front ends.
//!
//! [`stack`] opens a VM's disk files with the `vmdk` crate, reads partition tables
//! ([`partitions`]), assembles LVM2 volume groups with the `lvm2` crate and probes
//! every volume; [`spec`] resolves `VOLUME:PATH` (or a guest path through the guest's
//! fstab) to a filesystem opened through [`filesystems`], the one registry of
//! readers (ext2/3/4 today); [`cmd`] holds the commands, which see only the
//! `fsapi` interface.
//! Nothing here writes to an input: every source is opened read-only.

#![forbid(unsafe_code)]

pub mod cmd;
pub mod filesystems;
pub mod fstab;
pub mod guest;
pub mod io;
pub mod manifest;
pub mod names;
pub mod output;
pub mod progress;
pub use partitions;
pub mod spec;
pub mod stack;
