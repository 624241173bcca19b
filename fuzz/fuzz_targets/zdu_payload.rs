//! Fuzzes the ZDU payload model and its path to `/metrics`. The properties are
//! [`properties::zdu_payload`], in `fuzz/properties.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::zdu_payload(data));
