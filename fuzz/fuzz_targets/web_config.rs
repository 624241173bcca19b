//! Fuzzes the exporter-toolkit web configuration parser (`--web.config.file`). The properties are
//! [`properties::web_config`], in `fuzz/properties.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::web_config(data));
