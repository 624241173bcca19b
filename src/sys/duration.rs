//! Durations: Prometheus-style (`30s`, `1m30s`, `250ms`, `1h`), as used by every flag and
//! config key of the exporter, so that values read the same as in `prometheus.yml`; and Go's
//! `time.Duration` syntax, which the exporter-toolkit web-config file uses. Also the one
//! Unix-time clock ([`unix_now`]) and timestamp formatter ([`format_timestamp`]).

use std::fmt;
use std::time::Duration;

/// A duration string that is not of the form `[0-9]+(ms|s|m|h|d|w|y)` repeated, units in
/// descending order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {why} (expected e.g. 30s, 1m30s, 250ms, 1h)")]
pub struct DurationError {
    input: String,
    why: &'static str,
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration. `0` alone is accepted and means zero.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |why| DurationError {
        input: input.to_string(),
        why,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    let mut last_unit_rank: Option<usize> = None;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(err("a number must come before each unit"));
        }
        let number: u64 = s[start..i].parse().map_err(|_| err("number too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let rank = UNITS
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(|| err("unknown or missing unit"))?;
        if let Some(last) = last_unit_rank {
            if rank <= last {
                return Err(err("units must be in descending order and not repeat"));
            }
        }
        last_unit_rank = Some(rank);
        let millis = number
            .checked_mul(UNITS[rank].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("too large"))?;
        total = millis;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way Prometheus prints one (`1m30s`, `250ms`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if unit == "y" || unit == "w" {
            continue;
        }
        if ms >= size {
            out.push_str(&format!("{}{}", ms / size, unit));
            ms %= size;
        }
    }
    out
}

/// Parses a Go `time.Duration` string (`1s`, `1m30s`, `250ms`, `1.5h`, `10us`): the
/// grammar of the exporter-toolkit's web-config file (`rate_limit.interval`), which differs
/// from [`parse_duration`]'s (fractions and `ns`/`us`, no `d`/`w`/`y`). `None` when invalid.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * nanos;
    }
    Some(Duration::from_nanos(total as u64))
}

/// A `Duration` that parses and prints in Prometheus style, for flags and serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub Duration);

impl std::str::FromStr for PromDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(PromDuration)
    }
}

impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl<'de> serde::Deserialize<'de> for PromDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Now, in Unix seconds (0 on a clock before 1970).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A Unix time as RFC 3339 to the second (UTC); None for a time not after 1970, not finite or past year 9999.
pub fn format_timestamp(t: f64) -> Option<String> {
    // RFC 3339 has four-digit years: humantime panics from year 10000 on.
    (t > 0.0 && t.is_finite() && t < 253_402_300_800.0).then(|| {
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs_f64(t))
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_duration("1d2h").unwrap(),
            Duration::from_secs(26 * 3600)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn rejects_bad_durations_with_reason() {
        for bad in [
            "",
            "30",
            "s",
            "1s1m",
            "1x",
            "-1s",
            "1.5s",
            "1s1s",
            "99999999999999999999y",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("invalid duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["30s", "1m30s", "250ms", "1h", "2h3m4s5ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(
            parse_go_duration("10\u{b5}s"),
            Some(Duration::from_micros(10))
        );
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("-1s"), None);
    }
}
