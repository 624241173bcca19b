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

/// A password of 3..24 characters drawn mostly from the ones encoders treat specially.
pub(crate) fn random_password(rng: &mut impl rand::Rng) -> String {
    const SPECIAL: &[char] = &[
        '"', '\'', '\\', ':', '/', '%', '&', '<', '>', ' ', '+', '=', '#', '?', ';', 'é', 'ß', '€',
        '中', '😀', '\t',
    ];
    let len = rng.random_range(3..24);
    (0..len)
        .map(|_| {
            if rng.random_bool(0.5) {
                SPECIAL[rng.random_range(0..SPECIAL.len())]
            } else {
                rng.random_range(b'a'..=b'z') as char
            }
        })
        .collect()
}

/// The seed of a property test: `ZDU_TEST_SEED` when set (to replay a failure), else a
/// fresh one. Printed, so a failure can be replayed.
pub(crate) fn seed() -> u64 {
    let seed = std::env::var("ZDU_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("property test seed: {seed} (replay with ZDU_TEST_SEED={seed})");
    seed
}

fn url_encode(s: &str, upper: bool, plus: bool, all: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if plus && b == b' ' {
            out.push('+');
        } else if !all && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn html_escape(s: &str, numeric: bool) -> String {
    s.chars()
        .map(|c| match (c, numeric) {
            ('&', false) => "&amp;".to_string(),
            ('<', false) => "&lt;".to_string(),
            ('>', false) => "&gt;".to_string(),
            ('"', false) => "&quot;".to_string(),
            ('\'', false) => "&#39;".to_string(),
            (c, true) if !c.is_ascii_alphanumeric() => format!("&#x{:x};", c as u32),
            (c, _) => c.to_string(),
        })
        .collect()
}

fn json_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let mut b = [0u16; 2];
            for u in c.encode_utf16(&mut b) {
                out.push_str(&format!("\\u{u:04X}"));
            }
        }
    }
    out
}

/// Every encoding an upstream might echo the password in.
pub(crate) fn encoded_forms(user: &str, pw: &str) -> Vec<(&'static str, String)> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let json = serde_json::to_string(pw).unwrap();
    vec![
        ("raw", pw.to_string()),
        ("url upper", url_encode(pw, true, false, false)),
        ("url lower", url_encode(pw, false, false, false)),
        ("url all bytes", url_encode(pw, true, false, true)),
        ("form (+ for space)", url_encode(pw, false, true, false)),
        ("html named", html_escape(pw, false)),
        ("html numeric", html_escape(pw, true)),
        ("json", json[1..json.len() - 1].to_string()),
        ("json ascii", json_ascii(pw)),
        ("basic", STANDARD.encode(format!("{user}:{pw}"))),
        (
            "basic url-encoded",
            url_encode(&STANDARD.encode(format!("{user}:{pw}")), true, false, false),
        ),
        ("password base64", STANDARD.encode(pw)),
        ("password base64url", URL_SAFE_NO_PAD.encode(pw)),
    ]
}

#[test]
fn redaction_finds_every_encoding_of_random_passwords() {
    use rand::SeedableRng;
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for _ in 0..300 {
        let pw = random_password(&mut rng);
        let r = Redactor::new(Some("zdu"), &pw);
        for (name, form) in encoded_forms("zdu", &pw) {
            let text = format!("error: bad credentials {form} (from 10.0.0.1)");
            let out = r.redact(&text);
            assert_eq!(
                out, "error: bad credentials <redacted> (from 10.0.0.1)",
                "seed {seed}: password {pw:?} as {name} {form:?}"
            );
            assert!(r.found_in(text.as_bytes()), "seed {seed}: {pw:?} {name}");
        }
    }
}

#[test]
fn redaction_leaves_other_text_alone() {
    let r = Redactor::new(Some("zdu"), "p@ss:w/rd\"'<>");
    let text = "nothing here: p@ss w/rd &amp; %41 \\u0041";
    assert_eq!(r.redact(text), text);
    assert_eq!(
        r.redact("x p%40ss%3Aw%2frd&quot;&#39;&lt;&gt; y"),
        "x <redacted> y"
    );
}

/// The message for `text`, empty when it parses.
fn yaml_err<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
    serde_norway::from_str::<T>(text)
        .err()
        .map(|e| yaml_error_message(&e))
        .unwrap_or_default()
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Schema {
    name: String,
    timeout: Option<u64>,
}

#[test]
fn yaml_errors_never_quote_the_file() {
    use rand::SeedableRng;
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut texts: Vec<String> = vec![
        "Secret\"Middle\"Tail123".into(),
        "p@ss:w/rd\"'<>".into(),
        "Kn0wn-S3cret-zdu-c4n4ry-93f1".into(),
        "a\", expected struct X".into(),
    ];
    // A typo of a key the schema expects is named on purpose (`unknown_key`): a random
    // password within two edits of `name` (`yame`, about 1 run in 500) is such a typo.
    let typo = |t: &str| super::unknown_key::describe(t, "`name` or `timeout`").contains("did you");
    texts.extend(
        (0..200)
            .map(|_| random_password(&mut rng))
            .filter(|t| !typo(t)),
    );
    let docs = |secret: &str| {
        [
            secret.to_string(),
            format!("name: x\ntimeout: {secret}\n"),
            format!("name: x\n{secret}: 1\n"),
            format!("- {secret}\n"),
            format!("name: [{secret}\n"),
        ]
    };
    // What the messages say whatever the value: a fragment found here is template text. The
    // vocabulary is every message for the fixed samples and for 500 other random passwords
    // (an independent stream), so English words of the messages ("num" of "numeric") are
    // known; a value echoed into a message would add fragments no other input produces.
    let mut other = rand::rngs::StdRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let samples: Vec<String> = [
        "zzzz", "zz: zz", "- zz", "[zz", "\"zz", "{zz", "'zz", "&zz", "*zz", "%zz", "@zz", "`zz",
        "!zz", "|zz", ">zz", "?zz", ",zz", "]zz", "}zz", "#zz", ":zz", "\\zz", "zz\tzz",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain((0..500).map(|_| random_password(&mut other)))
    .collect();
    let template: String = samples
        .iter()
        .flat_map(|s| docs(s))
        .map(|d| yaml_err::<Schema>(&d) + "\n")
        .collect();
    for secret in texts {
        for doc in docs(&secret) {
            let msg = yaml_err::<Schema>(&doc);
            for frag in fragments(&secret) {
                assert!(
                    !msg.contains(&frag) || template.contains(&frag),
                    "seed {seed}: {doc:?} gave {msg:?}, which holds {frag:?}"
                );
            }
        }
    }
    assert_eq!(
        yaml_err::<Schema>("name: x\ntimeout: soon\n"),
        "timeout: invalid type: string, expected u64 at line 2 column 10"
            .trim_start_matches("timeout: ")
    );
    assert!(yaml_err::<Schema>("timeout: 1\n").starts_with("missing field `name`"));
    let unknown = yaml_err::<Schema>("name: x\nbogus: 1\n");
    assert!(
        unknown.starts_with("unknown field (name not shown), expected `name` or `timeout`"),
        "{unknown}"
    );
}

/// Every fragment of 3 or more characters of `s`.
fn fragments(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    for i in 0..chars.len() {
        for j in i + 3..=chars.len() {
            out.push(chars[i..j].iter().collect());
        }
    }
    out
}
