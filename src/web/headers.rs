//! `http_server_config.headers`: which response headers a web config may set, with which
//! values (the exporter-toolkit's list, on purpose), validated into typed header pairs.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};

use super::{invalid, WebConfigError};

/// Response headers a web config may set, with their allowed values (empty: any value).
/// The same list as the exporter-toolkit's, on purpose.
pub const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Validates the configured headers (names exact, values case-sensitive as in the toolkit);
/// headers with an empty value are dropped.
pub fn validate(
    headers: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::new();
    for (k, v) in headers {
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| n == k) else {
            return Err(invalid(format!("HTTP header {k:?} can not be configured")));
        };
        if !allowed.is_empty() && !allowed.contains(&v.as_str()) {
            return Err(invalid(format!(
                "invalid value for {k}. Expected one of: {allowed:?}, but got: {v:?}"
            )));
        }
        if v.is_empty() {
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| invalid(e.to_string()))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| invalid(format!("invalid value for {k}: not a valid header value")))?;
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_restricted() {
        let mut h = BTreeMap::new();
        h.insert("X-Frame-Options".to_string(), "deny".to_string());
        assert_eq!(validate(&h).unwrap().len(), 1);
        h.insert("X-Frame-Options".to_string(), "DENY".to_string());
        assert!(validate(&h).is_err());
        let mut h = BTreeMap::new();
        h.insert("Server".to_string(), "x".to_string());
        assert!(validate(&h)
            .unwrap_err()
            .to_string()
            .contains("can not be configured"));
        let mut h = BTreeMap::new();
        h.insert("X-XSS-Protection".to_string(), String::new());
        assert!(validate(&h).unwrap().is_empty());
    }
}
