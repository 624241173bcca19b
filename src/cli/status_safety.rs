//! What `status` ([`crate::cli::status`]) does not trust: the text it prints (every string from
//! the exporter or Bitbucket is escaped, so no control character, escape sequence or
//! newline reaches the terminal or forges a line), the size of a body (capped at
//! [`MAX_BODY_BYTES`]), the time a read may take (bounded by the `--timeout` deadline), and
//! `--exporter.url` (credentials in it are refused, never sent nor printed).

use std::time::Instant;

use crate::api::TargetView;

/// Most bytes read from one answer of the exporter's JSON API (8 MiB, as for Bitbucket's
/// answers): a view of 1000 nodes and 20 upgrades is well under 1 MiB.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `s` with every control character (C0, DEL, C1: ESC, CR, LF, tab, …) and every
/// bidirectional override written as a visible `\u{…}` escape; the rest as is.
pub fn escape(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if needs_escape(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

fn escape_opt(s: &mut Option<String>) {
    if let Some(v) = s.as_mut() {
        *v = escape(v);
    }
}

/// Escapes, in place, every string of `v` that `status` prints.
pub fn escape_view(v: &mut TargetView) {
    v.target = escape(&v.target);
    escape_opt(&mut v.down_reason);
    escape_opt(&mut v.cluster_state);
    for s in v.versions.iter_mut().chain(v.allowed_actions.iter_mut()) {
        *s = escape(s);
    }
    for n in &mut v.nodes {
        n.id = escape(&n.id);
        n.address = escape(&n.address);
        escape_opt(&mut n.name);
        escape_opt(&mut n.state);
        escape_opt(&mut n.version);
    }
    if let Some(n) = v.next_node.as_mut() {
        n.id = escape(&n.id);
        n.address = escape(&n.address);
        escape_opt(&mut n.name);
    }
}

/// Reads `resp`'s body, refusing it past [`MAX_BODY_BYTES`] (read incrementally: never more
/// than the cap is held).
pub async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(format!("answer larger than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("answer larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Err` when `url` holds a user name or password (`http://user:pw@host`): `status` sends
/// no credentials, and the message does not repeat the URL.
pub fn refuse_credentials(url: &str) -> Result<(), &'static str> {
    match reqwest::Url::parse(url) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => Err(
            "--exporter.url must not hold a user name or password (status sends no credentials; read an exporter behind basic auth with the --bitbucket.* flags instead)",
        ),
        Ok(_) => Ok(()),
        Err(_) if url.contains('@') => Err(
            "--exporter.url is not a valid URL and may hold credentials; it is not repeated here",
        ),
        Err(_) => Ok(()),
    }
}

/// `fut`, unless `deadline` comes first (`None`).
pub async fn within<T>(deadline: Instant, fut: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout_at(deadline.into(), fut).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert_eq!(escape("node-1"), "node-1");
        assert_eq!(escape("a\nb"), "a\\u{a}b");
        assert_eq!(escape("\x1b]0;x\x07"), "\\u{1b}]0;x\\u{7}");
        assert_eq!(escape("\u{9b}31m\u{202e}"), "\\u{9b}31m\\u{202e}");
        assert_eq!(escape("bücher"), "bücher");
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echo() {
        assert!(refuse_credentials("http://127.0.0.1:9879").is_ok());
        for u in [
            "http://user:s3cret@127.0.0.1:9",
            "http://user@h",
            "http://:s3cret@h",
        ] {
            let e = refuse_credentials(u).unwrap_err();
            assert!(!e.contains("s3cret") && !e.contains("user@"), "{e}");
        }
    }
}
