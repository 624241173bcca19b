//! Reading expositions: samples and their values (never substrings: `} 1` also matches
//! `} 10`), masking volatile values for golden files, and the check against the metric
//! catalogue.

/// One sample of a text exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses the samples of a text exposition (enough for tests: no escapes inside values
/// other than \" \\ \n). Lines that are not samples (comments, or other text when several
/// pages are concatenated) are skipped.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines().filter_map(sample_line).collect()
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample_line(line: &str) -> Option<Sample> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.find('{') {
        None => (head, Vec::new()),
        Some(i) => (&head[..i], parse_labels(head[i + 1..].strip_suffix('}')?)?),
    };
    is_metric_name(name).then(|| Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(body: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = rest[..eq].trim_start_matches(',').to_string();
        let quoted = rest[eq + 1..].strip_prefix('"')?;
        let mut val = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => val.push(match chars.next()?.1 {
                    'n' => '\n',
                    c => c,
                }),
                (i, '"') => break i,
                (_, c) => val.push(c),
            }
        };
        rest = quoted[end + 1..].trim_start_matches(',');
        out.push((key, val));
    }
    Some(out)
}

/// The value of the sample `name` whose labels include all of `want`.
pub fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples(text)
        .into_iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
}

/// How many samples named `name` there are.
pub fn count(text: &str, name: &str) -> usize {
    samples(text).into_iter().filter(|s| s.name == name).count()
}

/// Replaces values that change from run to run (timestamps, durations, process figures) so
/// that output can be compared with a golden file.
pub fn mask(text: &str) -> String {
    text.lines()
        .map(|l| {
            let volatile = ["_timestamp_seconds", "_zdu_poll_duration_seconds"];
            if !l.starts_with('#') && volatile.iter().any(|v| l.contains(v)) {
                match l.rsplit_once(' ') {
                    Some((head, _)) => format!("{head} <volatile>"),
                    None => l.to_string(),
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Compares `actual` with the checked-in file at `rel` (relative to the crate root); with
/// `UPDATE_GOLDEN` set, rewrites the file instead. Panics with the first differing lines.
pub fn check_golden(rel: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(10)
            .map(|(i, (a, b))| format!("line {}:\n  golden: {a}\n  actual: {b}", i + 1))
            .collect();
        panic!(
            "{rel} differs from the golden file ({} vs {} lines):\n{}\n(UPDATE_GOLDEN=1 to accept)",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// Checks that every family of an exposition (text 0.0.4 names counters with `_total` in
/// `# TYPE`, OpenMetrics without) is in the metric catalogue with the
/// same type and in the catalogue's order, and that every sample carries exactly the catalogue's label names, in order.
pub fn assert_matches_catalogue(text: &str) {
    use bitbucket_zdu_exporter::metrics::catalogue;
    let mut last = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            let pos = catalogue::ALL
                .iter()
                .position(|f| f.name == name || f.sample_name() == name)
                .unwrap_or_else(|| panic!("{name} is served but not in the catalogue"));
            assert_eq!(catalogue::ALL[pos].kind.as_str(), kind, "{name}: # TYPE");
            assert!(
                last < Some(pos),
                "{name} is served out of the catalogue's order"
            );
            last = Some(pos);
        }
    }
    for s in samples(text) {
        // A histogram's samples are `_bucket` (with `le` last), `_sum` and `_count`.
        let histogram = |f: &catalogue::Family| {
            f.kind == catalogue::Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| s.name == format!("{}{suffix}", f.name))
        };
        let f = catalogue::ALL
            .iter()
            .find(|f| f.sample_name() == s.name || histogram(f))
            .unwrap_or_else(|| panic!("sample {} is not in the catalogue", s.name));
        let mut want: Vec<&str> = f.labels.to_vec();
        if s.name.ends_with("_bucket") && f.kind == catalogue::Kind::Histogram {
            want.push("le");
        }
        let names: Vec<&str> = s.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, want, "{}: label names", s.name);
    }
}
