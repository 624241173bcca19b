//! Fuzzes the exporter-toolkit web configuration parser (`--web.config.file`).
//! Properties: nothing panics and every error has a message. Files the input names (TLS
//! certificates and keys) are resolved against a folder that does not exist.
#![no_main]

use std::path::Path;

use bitbucket_zdu_exporter::duration::parse_go_duration;
use bitbucket_zdu_exporter::web::WebSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_go_duration(text);
    match WebSettings::parse(Path::new("/nonexistent-fuzz-dir/web.yml"), text) {
        Ok(c) => {
            let _ = format!("{c:?}");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
