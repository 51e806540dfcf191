//! Fuzzes the VMDK text descriptor parser and the extent-name rewriter.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(d) = vmdk::descriptor::parse(&text) {
        let names: Vec<String> = d
            .extents
            .iter()
            .filter(|e| e.file_span.is_some())
            .map(|e| format!("new-{}.vmdk", e.line))
            .collect();
        if let Ok(out) = vmdk::descriptor::rewrite_extent_files(&text, &names) {
            // The rewrite must parse again to the same extent layout.
            let again = vmdk::descriptor::parse(&out).expect("rewritten descriptor parses");
            assert_eq!(again.extents.len(), d.extents.len());
        }
    }
    let _ = vmdk::descriptor::looks_like_descriptor(&text);
});
