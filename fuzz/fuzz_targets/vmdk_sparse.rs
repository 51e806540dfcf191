//! Fuzzes the hosted sparse / streamOptimized (`KDMV`) extent reader (see `single_extent.rs`).
#![no_main]

#[path = "single_extent.rs"]
mod single_extent;

libfuzzer_sys::fuzz_target!(|data: &[u8]| single_extent::run(b"KDMV", data));
