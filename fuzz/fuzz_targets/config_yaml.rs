//! Fuzzes the `--config.file` YAML parser and the flag-value parsers. The properties are
//! [`properties::config_yaml`], in `fuzz/properties.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| properties::config_yaml(data));
