//! The TLS part of the web-config file: `tls_server_config` as written, and where its PEM
//! data comes from. Below both the schema (`config`) and its validation (`tls`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{invalid, WebConfigError};

/// `tls_server_config` as written (validated by [`TlsSettings`](super::TlsSettings)).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileTls {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) client_ca: String,
    pub(crate) cert_file: String,
    pub(crate) key_file: String,
    pub(crate) client_auth_type: String,
    pub(crate) client_ca_file: String,
    pub(crate) cipher_suites: Vec<String>,
    pub(crate) curve_preferences: Vec<String>,
    pub(crate) min_version: Option<String>,
    pub(crate) max_version: Option<String>,
    pub(crate) prefer_server_cipher_suites: Option<bool>,
    pub(crate) client_allowed_sans: Option<Vec<String>>,
}

/// Where PEM data comes from: a file (path already joined with the config's directory) or
/// inline text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    File(PathBuf),
    Inline(String),
}

impl Source {
    /// The `*_file` key wins over the inline one; `None` when both are empty.
    pub(crate) fn pick(inline: &str, file: &str, dir: &Path) -> Option<Source> {
        if !file.is_empty() {
            Some(Source::File(join_dir(dir, file)))
        } else if !inline.is_empty() {
            Some(Source::Inline(inline.to_string()))
        } else {
            None
        }
    }

    /// The PEM bytes; `what` names the key in errors.
    pub(crate) fn read(&self, what: &str) -> Result<Vec<u8>, WebConfigError> {
        match self {
            Source::File(p) => crate::sys::safe_file::read(p)
                .map_err(|e| invalid(format!("failed to read {what} ({}): {e}", p.display()))),
            Source::Inline(s) => Ok(s.as_bytes().to_vec()),
        }
    }
}

fn join_dir(dir: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_win_over_inline_and_are_relative_to_the_config() {
        let dir = Path::new("/etc/exporter");
        assert_eq!(
            Source::pick("PEM", "server.crt", dir),
            Some(Source::File(dir.join("server.crt")))
        );
        assert_eq!(
            Source::pick("", "/abs/server.crt", dir),
            Some(Source::File(PathBuf::from("/abs/server.crt")))
        );
        assert_eq!(
            Source::pick("PEM", "", dir),
            Some(Source::Inline("PEM".into()))
        );
        assert_eq!(Source::pick("", "", dir), None);
    }
}
