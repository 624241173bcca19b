//! Credentials: a [`Secret`] that never prints, and a [`SecretSource`] that reads it from a
//! file (re-read when the file changes, so a rotated Kubernetes Secret needs no restart) or
//! from an environment variable. Secrets are never accepted as command-line flags, so they
//! cannot show up in `ps`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A credential value. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, and only the upstream client calls it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret could not be had. Carries the file path or variable name, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    EmptyFile(PathBuf),
    #[error("environment variable {0} is empty")]
    EmptyEnv(String),
}

/// Modification time and size of a secret file, used to notice that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

/// Where a credential comes from.
#[derive(Debug)]
pub enum SecretSource {
    /// A file, re-read whenever its modification time or size changes.
    File {
        path: PathBuf,
        cache: Mutex<Option<(FileStamp, Secret)>>,
    },
    /// A value taken once from an environment variable at start-up.
    Env { var: String, value: Secret },
}

impl SecretSource {
    /// A file source; the file is read (and checked) right away.
    pub fn file(path: impl Into<PathBuf>) -> Result<Self, SecretError> {
        let src = SecretSource::File {
            path: path.into(),
            cache: Mutex::new(None),
        };
        src.get()?;
        Ok(src)
    }

    /// An environment source with the value already read.
    pub fn env(var: impl Into<String>, value: String) -> Result<Self, SecretError> {
        let var = var.into();
        let value = value.trim_end_matches(['\n', '\r']).to_string();
        if value.is_empty() {
            return Err(SecretError::EmptyEnv(var));
        }
        Ok(SecretSource::Env {
            var,
            value: Secret(value),
        })
    }

    /// Where the secret comes from, for logs and the landing page (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::File { path, .. } => format!("file {}", path.display()),
            SecretSource::Env { var, .. } => format!("env {var}"),
        }
    }

    /// The current value. A file is re-read when it changed; if a re-read fails after an
    /// earlier success, the last good value is kept (a rotation in progress must not break
    /// polling) and the error is returned only when there never was a good value.
    pub fn get(&self) -> Result<Secret, SecretError> {
        match self {
            SecretSource::Env { value, .. } => Ok(value.clone()),
            SecretSource::File { path, cache } => {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                match read_if_changed(path, cache.as_ref().map(|(s, _)| s)) {
                    Ok(Some((stamp, secret))) => {
                        *cache = Some((stamp, secret.clone()));
                        Ok(secret)
                    }
                    Ok(None) => Ok(cache.as_ref().map(|(_, s)| s.clone()).expect("cached")),
                    Err(e) => match cache.as_ref() {
                        Some((_, s)) => {
                            tracing::warn!(path = %path.display(), error = %e, "secret file unreadable, keeping the last value read");
                            Ok(s.clone())
                        }
                        None => Err(e),
                    },
                }
            }
        }
    }
}

fn read_if_changed(
    path: &Path,
    known: Option<&FileStamp>,
) -> Result<Option<(FileStamp, Secret)>, SecretError> {
    let read_err = |source| SecretError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let stamp = FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    };
    if known == Some(&stamp) {
        return Ok(None);
    }
    let raw = std::fs::read_to_string(path).map_err(read_err)?;
    let value = raw.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(SecretError::EmptyFile(path.to_path_buf()));
    }
    if known.is_some() {
        tracing::info!(path = %path.display(), "secret file changed, using the new value");
    }
    Ok(Some((stamp, Secret(value.to_string()))))
}

/// Hides the double-quoted values a YAML parser's error quotes (`invalid type: string "..."`):
/// the file may be a secret given by mistake. Key names (quoted with backticks) stay.
pub fn hide_quoted_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quoted = false;
    for c in msg.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"(value hidden)\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        let src = SecretSource::env("X", "hunter2-very-secret".into()).unwrap();
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn file_is_reread_when_it_changes_and_kept_when_it_vanishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "first\n").unwrap();
        let src = SecretSource::file(&path).unwrap();
        assert_eq!(src.get().unwrap().expose(), "first");
        std::fs::write(&path, "second-longer").unwrap();
        assert_eq!(src.get().unwrap().expose(), "second-longer");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(src.get().unwrap().expose(), "second-longer");
    }

    #[test]
    fn empty_or_missing_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "\n").unwrap();
        let e = SecretSource::file(&path).unwrap_err().to_string();
        assert!(e.contains("is empty") && e.contains("pw"), "{e}");
        let e = SecretSource::file(dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read secret file"), "{e}");
    }
}
