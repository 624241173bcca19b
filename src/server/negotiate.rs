//! Content negotiation: the exposition format from `Accept`, gzip from `Accept-Encoding`,
//! and the response that serves a cached exposition's prebuilt bytes.

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;

use crate::metrics::cache::Exposition;
use crate::metrics::Format;

/// Picks the format from `Accept`: OpenMetrics 1.0.0 when preferred (by q-value) over the
/// classic text format, else text 0.0.4.
pub fn negotiate(headers: &HeaderMap) -> Format {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Format::Text004;
    };
    let mut best_om: f32 = -1.0;
    let mut best_text: f32 = -1.0;
    for part in accept.split(',') {
        let mut params = part.split(';').map(str::trim);
        let media = params.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version_ok = true;
        for p in params {
            if let Some(v) = p.strip_prefix("q=") {
                q = v.parse().unwrap_or(0.0);
            } else if let Some(v) = p.strip_prefix("version=") {
                if media == "application/openmetrics-text" {
                    version_ok = v == "1.0.0" || v == "0.0.1";
                }
            }
        }
        if media == "application/openmetrics-text" && version_ok && q > 0.0 {
            best_om = best_om.max(q);
        } else if (media == "text/plain" || media == "*/*" || media == "text/*") && q > 0.0 {
            best_text = best_text.max(q);
        }
    }
    if best_om > 0.0 && best_om >= best_text {
        Format::OpenMetrics
    } else {
        Format::Text004
    }
}

/// Whether the response is to be gzip-compressed, decided from `Accept-Encoding` as the
/// router's `CompressionLayer` decides it for every other response: gzip (or x-gzip) with the
/// highest q-value above 0, ties going to gzip over identity; unknown codings and malformed
/// q-values are ignored.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip: u16 = 0;
    let mut identity: u16 = 0;
    for v in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut it = part.splitn(2, ';');
            let coding = it.next().unwrap_or("").trim();
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut gzip
                } else if coding.eq_ignore_ascii_case("identity") {
                    &mut identity
                } else {
                    continue;
                };
            let q = match it.next() {
                None => Some(1000),
                Some(q) => q_value(q.trim()),
            };
            if let Some(q) = q {
                *slot = (*slot).max(q);
            }
        }
    }
    gzip > 0 && gzip >= identity
}

/// A q-value `q=0`…`q=1.000` in thousandths; None when malformed.
fn q_value(s: &str) -> Option<u16> {
    let rest = s.strip_prefix("q=").or_else(|| s.strip_prefix("Q="))?;
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    let mut v: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    if frac.len() > 3 {
        return None;
    }
    let mut factor = 100;
    for b in frac.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v += factor * u16::from(b - b'0');
        factor /= 10;
    }
    (v <= 1000).then_some(v)
}

/// A body written as a few prebuilt pieces, with its exact length known.
struct Pieces {
    pieces: std::vec::IntoIter<Bytes>,
    remaining: u64,
}

impl http_body::Body for Pieces {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        std::task::Poll::Ready(this.pieces.next().map(|b| {
            this.remaining -= b.len() as u64;
            Ok(http_body::Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// The response for a cached exposition: its prebuilt plain or gzip bytes, with
/// `Content-Type`, `Content-Length`, `Vary: accept-encoding` and, for gzip,
/// `Content-Encoding: gzip` (so the `CompressionLayer` leaves it alone).
pub(super) fn exposition(exp: &Exposition, headers: &HeaderMap) -> Response {
    let gzipped = if accepts_gzip(headers) {
        exp.gzip()
    } else {
        None
    };
    let gzip = gzipped.is_some();
    let pieces: Vec<Bytes> = gzipped
        .unwrap_or_else(|| exp.plain())
        .into_iter()
        .filter(|b| !b.is_empty())
        .collect();
    let len: u64 = pieces.iter().map(|b| b.len() as u64).sum();
    let mut resp = Response::new(axum::body::Body::new(Pieces {
        pieces: pieces.into_iter(),
        remaining: len,
    }));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(exp.format().content_type()),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::VARY,
        HeaderValue::from_static(header::ACCEPT_ENCODING.as_str()),
    );
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        m
    }

    #[test]
    fn negotiation_follows_q_values() {
        assert_eq!(negotiate(&HeaderMap::new()), Format::Text004);
        assert_eq!(
            negotiate(&h("application/openmetrics-text")),
            Format::OpenMetrics
        );
        // What Prometheus 2.x sends.
        assert_eq!(
            negotiate(&h("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(&h(
                "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"
            )),
            Format::Text004
        );
        assert_eq!(
            negotiate(&h("application/openmetrics-text;version=2.0.0")),
            Format::Text004
        );
        assert_eq!(negotiate(&h("*/*")), Format::Text004);
        assert_eq!(negotiate(&h("garbage;;;q=x")), Format::Text004);
    }
}
