//! Fuzzes the SESparse extent reader (see `single_extent.rs`).
#![no_main]

#[path = "single_extent.rs"]
mod single_extent;

libfuzzer_sys::fuzz_target!(|data: &[u8]| single_extent::run(
    &[0xbe, 0xba, 0xfe, 0xca, 0, 0, 0, 0],
    data
));
