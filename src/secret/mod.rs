//! Credentials: a [`Secret`] that never prints, and a [`SecretSource`] that reads it from a
//! file (re-read when the file changes, so a rotated Kubernetes Secret needs no restart) or
//! from an environment variable. Secrets are never accepted as command-line flags, so they
//! cannot show up in `ps`.
//!
//! The unit tests are in `secret/tests.rs`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// A credential value. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, and only the upstream client calls it. Cloning it shares the value (every
/// request of a poll holds one) instead of copying it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(std::sync::Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().into())
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
    /// The secret file cannot be read.
    #[error("cannot read secret file {path}: {source}")]
    Read {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The secret file holds nothing but line ends.
    #[error("secret file {0} is empty")]
    EmptyFile(PathBuf),
    /// The environment variable holds nothing but line ends.
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
        /// The file's path.
        path: PathBuf,
        /// The value last read, with the file's stamp at that read.
        cache: Mutex<Option<(FileStamp, Secret)>>,
    },
    /// A value taken once from an environment variable at start-up.
    Env {
        /// The variable's name.
        var: String,
        /// Its value.
        value: Secret,
    },
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
            value: Secret::new(value),
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
    let raw = crate::sys::safe_file::read_to_string(path).map_err(read_err)?;
    let value = raw.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(SecretError::EmptyFile(path.to_path_buf()));
    }
    if known.is_some() {
        tracing::info!(path = %path.display(), "secret file changed, using the new value");
    }
    Ok(Some((stamp, Secret::new(value))))
}

/// The message for a YAML file that does not parse or does not fit the schema, built only
/// from what the schema and the parser know (the kind of error, the field names of the schema,
/// the expected type, the line and column), never from the file's text: the file may be a
/// secret given by mistake. Keys found in the file are not shown either, except an unknown
/// key that is a typo of a valid one (`unknown_key.rs`); the location points at them.
pub fn yaml_error_message(e: &serde_norway::Error) -> String {
    let loc = e
        .location()
        .map(|l| format!(" at line {} column {}", l.line(), l.column()))
        .unwrap_or_default();
    let text = e.to_string();
    let text = text.strip_suffix(&loc).unwrap_or(&text);
    format!("{}{loc}", describe_yaml_message(text))
}

/// What [`yaml_error_message`] keeps of a parser message (without its location suffix).
fn describe_yaml_message(text: &str) -> String {
    // serde's messages put the schema's expectation last: found from the end, it cannot be
    // a value the file made up.
    let expected = || {
        text.rfind(", expected ")
            .map(|i| &text[i + ", expected ".len()..])
            .filter(|x| schema_text(x))
            .map(|x| format!(", expected {x}"))
            .unwrap_or_default()
    };
    if let Some(rest) = after(text, "invalid type: ") {
        return format!("invalid type: {}{}", value_kind(rest), expected());
    }
    if let Some(rest) = after(text, "invalid value: ") {
        return format!("invalid value: {}{}", value_kind(rest), expected());
    }
    if let Some(rest) = after(text, "unknown field `") {
        let name = rest.split('`').next().unwrap_or("");
        return format!("{}{}", unknown_key::describe(name, &expected()), expected());
    }
    if after(text, "unknown variant `").is_some() {
        return format!("unknown variant (value not shown){}", expected());
    }
    for what in ["missing field `", "duplicate field `"] {
        if let Some(rest) = after(text, what) {
            let name = rest.split('`').next().unwrap_or("");
            let what = what.trim_end_matches(" `");
            return if identifier(name) {
                format!("{what} `{name}`")
            } else {
                what.to_string()
            };
        }
    }
    if let Some(rest) = after(text, "invalid length ") {
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        return format!("invalid length {n}{}", expected());
    }
    if let Some(rest) = after(text, "data did not match any variant of untagged enum ") {
        return format!(
            "data did not match any variant of untagged enum {}",
            if identifier(rest) { rest } else { "" }
        )
        .trim_end()
        .to_string();
    }
    // The parser's own messages (libyaml's problem and context texts, serde_norway's fixed
    // ones) quote nothing; anything else is not shown.
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " ,.:()-".contains(c))
    {
        return text.to_string();
    }
    "not valid YAML for this file".to_string()
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|i| &text[i + marker.len()..])
}

fn identifier(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Text serde writes from the schema: type and field names, never quotes.
fn schema_text(s: &str) -> bool {
    s.len() <= 400
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " _`,.-:<>()[]".contains(c))
}

/// The kind of value serde's `Unexpected` names, without the value itself.
fn value_kind(rest: &str) -> &'static str {
    const KINDS: [&str; 17] = [
        "string",
        "integer",
        "floating point",
        "boolean",
        "map",
        "sequence",
        "unit value",
        "unit variant",
        "newtype struct",
        "newtype variant",
        "tuple variant",
        "struct variant",
        "enum",
        "char",
        "byte array",
        "Option value",
        "null",
    ];
    KINDS
        .iter()
        .find(|k| rest.starts_with(*k))
        .copied()
        .unwrap_or("value")
}

/// The shortest secret looked for: shorter ones would redact ordinary text.
const MIN_SECRET_LEN: usize = 3;

/// What redaction puts in place of a credential.
pub const REDACTED: &str = "<redacted>";

/// Finds a credential in text an upstream (or a proxy in front of it) sent back, in whatever
/// encoding it was echoed: raw, URL-encoded (`%XX` in upper or lower case hex, `+` for a
/// space), HTML-escaped (named, decimal and hex entities), JSON-escaped (`\"`, `\\`, `\/`,
/// `\uXXXX` with surrogate pairs) — mixed freely, character by character — and the base64 of
/// Basic auth's `user:password` and of the value alone (standard and URL-safe alphabets, with
/// and without padding, each again in any of the escapings above).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a form containing another is replaced whole.
    needles: Vec<Vec<char>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

impl Redactor {
    /// A redactor for `secret`, used with Basic auth as `username` when given. Values shorter
    /// than 3 bytes are not looked for.
    pub fn new(username: Option<&str>, secret: &str) -> Self {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        use base64::Engine as _;
        let mut needles: Vec<String> = Vec::new();
        if secret.len() >= MIN_SECRET_LEN {
            let mut add = |f: String| {
                if !needles.contains(&f) {
                    needles.push(f);
                }
            };
            add(secret.to_string());
            let mut encoded = vec![secret.to_string()];
            if let Some(user) = username {
                encoded.push(format!("{user}:{secret}"));
            }
            for plain in encoded {
                for engine in [&STANDARD, &URL_SAFE] {
                    let b64 = engine.encode(plain.as_bytes());
                    add(b64.trim_end_matches('=').to_string());
                    add(b64);
                }
            }
        }
        needles.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Redactor {
            needles: needles.into_iter().map(|n| n.chars().collect()).collect(),
        }
    }

    /// Nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every occurrence replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_string();
        }
        String::from_utf8_lossy(&self.redact_bytes(text.as_bytes())).into_owned()
    }

    /// [`Redactor::redact`] on bytes that need not be UTF-8.
    pub fn redact_bytes(&self, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        for needle in &self.needles {
            body = replace_encoded(&body, needle);
        }
        body
    }

    /// Whether `text` holds the credential in any form.
    pub fn found_in(&self, text: &[u8]) -> bool {
        self.needles
            .iter()
            .any(|n| (0..text.len()).any(|s| match_at(text, s, n).is_some()))
    }
}

fn replace_encoded(text: &[u8], needle: &[char]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        match match_at(text, i, needle) {
            Some(end) => {
                out.extend_from_slice(REDACTED.as_bytes());
                i = end;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    out
}

/// Where a match of `needle` starting at `start` ends (the longest one), if there is one.
fn match_at(text: &[u8], start: usize, needle: &[char]) -> Option<usize> {
    let mut here = vec![start];
    let mut next = Vec::new();
    for &c in needle {
        next.clear();
        for &p in &here {
            encodings_at(text, p, c, &mut next);
        }
        if next.is_empty() {
            return None;
        }
        next.sort_unstable();
        next.dedup();
        std::mem::swap(&mut here, &mut next);
    }
    here.last().copied()
}

/// Pushes the end of every encoding of `c` found at `text[p..]`.
fn encodings_at(text: &[u8], p: usize, c: char, ends: &mut Vec<usize>) {
    let rest = &text[p.min(text.len())..];
    let mut utf8 = [0u8; 4];
    let raw = c.encode_utf8(&mut utf8).as_bytes();
    if rest.starts_with(raw) {
        ends.push(p + raw.len());
    }
    // %XX for every UTF-8 byte, either case.
    let mut q = 0;
    let pct = raw.iter().all(|&b| {
        let ok = rest.len() >= q + 3
            && rest[q] == b'%'
            && hex_value(&rest[q + 1..q + 3]) == Some(u32::from(b));
        q += 3;
        ok
    });
    if pct {
        ends.push(p + q);
    }
    if c == ' ' && rest.first() == Some(&b'+') {
        ends.push(p + 1);
    }
    match rest.first() {
        Some(b'&') => {
            let named: &[&str] = match c {
                '&' => &["&amp;"],
                '<' => &["&lt;"],
                '>' => &["&gt;"],
                '"' => &["&quot;"],
                '\'' => &["&apos;"],
                _ => &[],
            };
            for n in named {
                if rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n.as_bytes()) {
                    ends.push(p + n.len());
                }
            }
            if let Some(len) = numeric_entity(rest, c) {
                ends.push(p + len);
            }
        }
        Some(b'\\') => {
            let short = match c {
                '"' => Some(b'"'),
                '\\' => Some(b'\\'),
                '/' => Some(b'/'),
                '\u{8}' => Some(b'b'),
                '\u{c}' => Some(b'f'),
                '\n' => Some(b'n'),
                '\r' => Some(b'r'),
                '\t' => Some(b't'),
                _ => None,
            };
            if short.is_some() && rest.get(1).copied() == short {
                ends.push(p + 2);
            }
            let mut units = [0u16; 2];
            let units = c.encode_utf16(&mut units);
            let mut q = 0;
            let ok = units.iter().all(|&u| {
                let ok = rest.len() >= q + 6
                    && rest[q] == b'\\'
                    && rest[q + 1] == b'u'
                    && hex_value(&rest[q + 2..q + 6]) == Some(u32::from(u));
                q += 6;
                ok
            });
            if ok {
                ends.push(p + q);
            }
        }
        _ => {}
    }
}

/// `&#NNN;` or `&#xHHH;` standing for `c`: the length of the entity.
fn numeric_entity(rest: &[u8], c: char) -> Option<usize> {
    if rest.len() < 4 || &rest[..2] != b"&#" {
        return None;
    }
    let (hex, digits_from) = match rest[2] {
        b'x' | b'X' => (true, 3),
        _ => (false, 2),
    };
    let digits = rest[digits_from..]
        .iter()
        .take(10)
        .take_while(|b| {
            if hex {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            }
        })
        .count();
    let end = digits_from + digits;
    if digits == 0 || rest.get(end) != Some(&b';') {
        return None;
    }
    let s = std::str::from_utf8(&rest[digits_from..end]).ok()?;
    let v = u32::from_str_radix(s, if hex { 16 } else { 10 }).ok()?;
    (v == u32::from(c)).then_some(end + 1)
}

fn hex_value(digits: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(digits).ok()?;
    if !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests;
mod unknown_key;
