//! Random passwords over every output path (issue 10, findings 3 and 4).
//!
//! A small seeded generator (`ZDU_TEST_SEED` replays a failure; the seed is printed) makes
//! passwords of the characters encoders treat specially; an upstream echoes each one back in
//! a different encoding (raw, URL-encoded upper/lower/`+`, HTML-escaped, JSON-escaped and
//! `\u`-escaped, base64 alone and as Basic's `user:password`) in error bodies, pages and
//! redirects; every output of the exporter is then searched for every encoding.

use super::*;

/// The seed: `ZDU_TEST_SEED` when set, else a fresh one; printed so a failure can be replayed.
fn seed() -> u64 {
    let seed = std::env::var("ZDU_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("property test seed: {seed} (replay with ZDU_TEST_SEED={seed})");
    seed
}

/// A password of 8..24 characters, half of them from those encoders treat specially.
fn random_password(rng: &mut impl rand::Rng) -> String {
    const SPECIAL: &[char] = &[
        '"', '\'', '\\', ':', '/', '%', '&', '<', '>', ' ', '+', '=', '#', '?', ';', '{', '}', 'é',
        'ß', '€', '中', '😀',
    ];
    let len = rng.random_range(8..24);
    (0..len)
        .map(|i| {
            // Never a leading or trailing space: files are read as written, but a space at
            // either end is where a human would trim.
            if i > 0 && i + 1 < len && rng.random_bool(0.5) {
                SPECIAL[rng.random_range(0..SPECIAL.len())]
            } else {
                rng.random_range(b'a'..=b'z') as char
            }
        })
        .collect()
}

fn url_encode(s: &str, upper: bool, plus: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if plus && b == b' ' {
            out.push('+');
        } else if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn json_inner(s: &str) -> String {
    let j = serde_json::to_string(s).unwrap();
    j[1..j.len() - 1].to_string()
}

fn json_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let mut b = [0u16; 2];
            for u in c.encode_utf16(&mut b) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// Every encoding of `pw` looked for in the outputs.
fn leak_forms(pw: &str) -> Vec<(&'static str, String)> {
    let basic = b64(format!("{USER}:{pw}"));
    vec![
        ("raw", pw.to_string()),
        ("url upper", url_encode(pw, true, false)),
        ("url lower", url_encode(pw, false, false)),
        ("form", url_encode(pw, false, true)),
        ("html", html_escape(pw)),
        ("json", json_inner(pw)),
        ("json ascii", json_ascii(pw)),
        ("base64", b64(pw)),
        ("basic", basic.clone()),
        ("basic unpadded", basic.trim_end_matches('=').to_string()),
        // What a logfmt or JSON log line makes of the raw value.
        ("escaped raw", pw.replace('\\', "\\\\").replace('"', "\\\"")),
    ]
}

fn assert_no_leak(what: &str, text: &str, passwords: &[String], seed: u64) {
    for pw in passwords {
        for (name, form) in leak_forms(pw) {
            assert!(
                !text.contains(&form),
                "seed {seed}: {what} holds the password {pw:?} ({name}: {form:?}):\n{text}"
            );
        }
        // The longest run of it without the generator's plain letters: a fragment.
        let chars: Vec<char> = pw.chars().collect();
        for w in chars.windows(6) {
            let frag: String = w.iter().collect();
            if frag.chars().filter(|c| !c.is_ascii_alphanumeric()).count() >= 3 {
                assert!(
                    !text.contains(&frag),
                    "seed {seed}: {what} holds a fragment {frag:?} of {pw:?}:\n{text}"
                );
            }
        }
    }
}

/// The password a request carried (from its `Authorization: Basic` header).
fn password_of(request: &str) -> String {
    request
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization").then(|| v.trim())
        })
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(_, p)| p.to_string()))
        .unwrap_or_default()
}

/// Request `i` echoes its password back in the `i % 10`-th encoding.
fn echo_encoded(i: usize, request: &str) -> Canned {
    let pw = password_of(request);
    let basic = b64(format!("{USER}:{pw}"));
    let json = |status: u16, message: String| Canned {
        status,
        content_type: Some("application/json".into()),
        extra_headers: String::new(),
        body: format!(r#"{{"errors":[{{"message":"{message}"}}]}}"#),
    };
    match i % 10 {
        0 => json(401, format!("bad password {}", json_inner(&pw))),
        1 => json(403, format!("denied for {}", url_encode(&pw, true, false))),
        2 => Canned {
            content_type: Some("text/html".into()),
            ..json(500, String::new())
        }
        .with_body(format!("<html><p>password {}</p></html>", html_escape(&pw))),
        3 => json(400, format!("bad header {}", b64(&pw))),
        4 => json(409, format!("conflict {}", json_ascii(&pw))),
        5 => Canned {
            status: 302,
            content_type: Some("text/plain".into()),
            extra_headers: format!(
                "Location: http://127.0.0.1:1/login?pw={}&auth={}\r\n",
                url_encode(&pw, false, true),
                url_encode(&basic, true, false)
            ),
            body: String::new(),
        },
        6 => Canned {
            content_type: Some("text/html".into()),
            ..json(200, String::new())
        }
        .with_body(format!(
            "<html>login as {USER} with {}</html>",
            url_encode(&pw, false, false)
        )),
        7 => Canned {
            // A JSON string where an object belongs: the decoder quotes it.
            body: serde_json::to_string(&pw).unwrap(),
            ..json(200, String::new())
        },
        8 => json(418, format!("Authorization: Basic {basic}")),
        _ => json(
            400,
            format!("bad {} and {}", json_inner(&pw), html_escape(&pw)),
        ),
    }
}

trait WithBody {
    fn with_body(self, body: String) -> Canned;
}

impl WithBody for Canned {
    fn with_body(self, body: String) -> Canned {
        Canned { body, ..self }
    }
}

/// Writes a `--config.file` with one target per password, each pointing at `upstream`.
fn write_targets(dir: &Path, upstream: &str, passwords: &[String]) -> PathBuf {
    let mut yaml = String::from("targets:\n");
    for (i, pw) in passwords.iter().enumerate() {
        let f = dir.join(format!("pw{i}"));
        std::fs::write(&f, pw).unwrap();
        yaml.push_str(&format!(
            "  - name: t{i}\n    url: {upstream}/\n    timeout: 300ms\n    poll_interval: 300ms\n    auth:\n      username: {USER}\n      password_file: {}\n",
            f.display()
        ));
    }
    let path = dir.join("targets.yml");
    std::fs::write(&path, yaml).unwrap();
    path
}

async fn random_passwords_everywhere(format: &str) {
    use rand::SeedableRng;
    bitbucket_zdu_exporter::client::install_crypto_provider();
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let passwords: Vec<String> = (0..4).map(|_| random_password(&mut rng)).collect();
    let dir = tempfile::tempdir().unwrap();
    let upstream = Mock::scripted(echo_encoded).await;
    let config = write_targets(dir.path(), &upstream.url(), &passwords);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let exp = Proc::spawn(
        &[
            format!("--config.file={}", config.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=debug".into(),
            format!("--log.format={format}"),
            "--poll.max-age=30s".into(),
        ],
        &[],
    );
    let mut pages = String::new();
    let paths: Vec<String> = ["/", "/metrics", "/probe?target=nope", "/-/ready"]
        .iter()
        .map(|s| s.to_string())
        .chain((0..passwords.len()).map(|i| format!("/probe?target=t{i}")))
        .collect();
    let start = Instant::now();
    // Every encoding reaches every target at least twice (4 targets, 10 encodings).
    while upstream.seen().len() < 90 && start.elapsed() < Duration::from_secs(90) {
        for p in &paths {
            if let Some((status, body)) = get(&format!("{base}{p}")).await {
                pages.push_str(&format!("==> {p} {status}\n{body}\n"));
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(upstream.seen().len() >= 40, "the exporter kept polling");
    assert!(pages.contains("bitbucket_zdu_last_error_info"), "{pages}");
    assert_no_leak("served pages", &pages, &passwords, seed);

    // A reload that fails: the config file replaced by one of the password files.
    std::fs::copy(dir.path().join("pw0"), &config).unwrap();
    let reply = tokio::task::spawn_blocking(move || {
        http_blocking("POST", port, "/-/reload").map_or_else(String::new, |r| r.body)
    })
    .await
    .unwrap();
    assert!(reply.contains("failed to reload"), "{reply}");
    assert_no_leak("/-/reload answer", &reply, &passwords, seed);
    let after = get(&format!("{base}/"))
        .await
        .map(|r| r.1)
        .unwrap_or_default();
    assert_no_leak(
        "landing page after a failed reload",
        &after,
        &passwords,
        seed,
    );

    let (out, err) = exp.finish();
    assert!(err.contains("poll failed"), "{err}");
    assert_no_leak("exporter stdout", &out, &passwords, seed);
    assert_no_leak("exporter stderr", &err, &passwords, seed);

    // --config.check and start-up, with a password file where a config file belongs.
    for i in 0..passwords.len() {
        let pw_file = dir.path().join(format!("pw{i}"));
        for args in [
            vec![
                format!("--config.file={}", pw_file.display()),
                "--config.check".into(),
            ],
            vec![
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--web.config.file={}", pw_file.display()),
                "--config.check".into(),
            ],
            vec![
                format!("--log.format={format}"),
                "--bitbucket.url=https://bb.example.com".into(),
                format!("--web.config.file={}", pw_file.display()),
                format!("--web.listen-address=127.0.0.1:{}", free_port()),
            ],
        ] {
            let out = run_bin(&args, &[]);
            let text = output_text(&out);
            assert!(!out.status.success(), "{args:?}: {text}");
            assert_no_leak(&format!("{args:?}"), &text, &passwords, seed);
        }
    }
}

#[tokio::test]
async fn random_passwords_never_leak_logfmt() {
    random_passwords_everywhere("logfmt").await;
}

#[tokio::test]
async fn random_passwords_never_leak_json() {
    random_passwords_everywhere("json").await;
}

/// The exact values from issue 10: no part of them in a configuration error.
#[test]
fn issue_10_values_given_as_config_files_leave_no_fragment() {
    let dir = tempfile::tempdir().unwrap();
    for (i, value) in ["Secret\"Middle\"Tail123", "p@ss:w/rd\"'<>"]
        .iter()
        .enumerate()
    {
        let f = dir.path().join(format!("v{i}"));
        std::fs::write(&f, format!("{value}\n")).unwrap();
        for flag in ["--config.file", "--web.config.file"] {
            let out = run_bin(
                &[
                    "--bitbucket.url=https://bb.example.com".to_string(),
                    format!("{flag}={}", f.display()),
                    "--config.check".into(),
                ]
                .into_iter()
                .filter(|a| flag == "--web.config.file" || !a.starts_with("--bitbucket"))
                .collect::<Vec<_>>(),
                &[],
            );
            let text = output_text(&out);
            assert!(!out.status.success(), "{text}");
            for frag in ["Middle", "Tail", "Secret\"", "'<>", "w/rd", "p@ss"] {
                assert!(!text.contains(frag), "{flag} {value:?}: {frag:?} in {text}");
            }
            assert!(text.contains("invalid type: string"), "{text}");
        }
    }
}
