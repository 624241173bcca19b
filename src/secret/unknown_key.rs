//! The name of an unknown key in a YAML error. Key names are not secrets, values are, but
//! a secret file given as a config file by mistake would have its first word read as a
//! key. So an unknown key is named only when it is a typo of a valid one: an identifier
//! within [`MAX_EDITS`] edits of a name the schema expects (`timout` for `timeout`).
//! Anything else stays unnamed; the location still points at it.

/// Most single-character edits between an unknown key and a valid name for the key to be
/// shown as a typo of it.
pub const MAX_EDITS: usize = 2;

/// `unknown field `NAME`` as printed: ``unknown field `timout` (did you mean `timeout`?)``
/// for a typo, `unknown field (name not shown)` otherwise. `expected` is serde's list of
/// valid names (`` `name` or `timeout` ``).
pub fn describe(name: &str, expected: &str) -> String {
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let identifier = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let closest = valid
        .iter()
        .map(|v| (edits(name, v), *v))
        .min()
        .filter(|(d, _)| *d <= MAX_EDITS && identifier);
    match closest {
        Some((_, v)) => format!("unknown field `{name}` (did you mean `{v}`?)"),
        None => "unknown field (name not shown)".to_string(),
    }
}

/// Levenshtein distance (characters), stopping early past [`MAX_EDITS`].
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > MAX_EDITS {
        return MAX_EDITS + 1;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_named_anything_else_is_not() {
        let exp = "`name` or `timeout`";
        assert_eq!(
            describe("timout", exp),
            "unknown field `timout` (did you mean `timeout`?)"
        );
        assert_eq!(
            describe("nmae", exp),
            "unknown field `nmae` (did you mean `name`?)"
        );
        for secret in ["hunter2", "s3cr3t-passw0rd", "p@ss", "bogus"] {
            assert_eq!(describe(secret, exp), "unknown field (name not shown)");
        }
    }
}
