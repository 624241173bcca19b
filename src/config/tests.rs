//! Unit tests of flags, file and validation together.

use super::*;
use std::collections::HashMap;

struct FakeEnv(HashMap<&'static str, String>);
impl Env for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    exporter: ExporterArgs,
}

fn args(extra: &[&str]) -> ExporterArgs {
    use clap::Parser;
    let mut v = vec!["x"];
    v.extend_from_slice(extra);
    Flags::try_parse_from(v).unwrap().exporter
}

fn no_env() -> FakeEnv {
    FakeEnv(HashMap::new())
}

#[test]
fn flag_mode_builds_one_target_with_context_path() {
    let a = args(&[
        "--bitbucket.url",
        "https://bb.example.com/bitbucket/",
        "--poll.interval",
        "1m",
    ]);
    let c = Config::from_args(&a, &no_env()).unwrap();
    let t = &c.targets()[0];
    assert_eq!(
        t.endpoint("cluster").as_str(),
        "https://bb.example.com/bitbucket/rest/zdu/cluster"
    );
    assert_eq!(t.poll_interval(), Duration::from_secs(60));
    assert_eq!(t.max_age(), Duration::from_secs(180));
    assert_eq!(t.timeout(), Duration::from_secs(10));
    assert_eq!(c.web().listen_addresses()[0].port(), 9879);
}

#[test]
fn password_comes_from_env_and_never_from_a_flag() {
    let env = FakeEnv(HashMap::from([(ENV_PASSWORD, "s3cr3t-pw".to_string())]));
    let a = args(&[
        "--bitbucket.url",
        "http://h:7990",
        "--bitbucket.username",
        "zdu",
    ]);
    let c = Config::from_args(&a, &env).unwrap();
    assert!(matches!(c.targets()[0].auth(), AuthConfig::Basic { .. }));
    assert!(!format!("{c:?}").contains("s3cr3t-pw"));
    assert!(<Flags as clap::Parser>::try_parse_from(["x", "--bitbucket.password", "p"]).is_err());
}

#[test]
fn bad_values_name_their_key() {
    let cases: &[(&[&str], &str)] = &[
        (&["--bitbucket.url", "ftp://h"], "--bitbucket.url"),
        (
            &["--bitbucket.url", "https://u:p@h"],
            "must not contain credentials",
        ),
        (
            &["--bitbucket.url", "https://h/rest/zdu/cluster"],
            "base URL",
        ),
        (
            &["--bitbucket.url", "https://h", "--bitbucket.username", "u"],
            "needs a password",
        ),
        (
            &["--bitbucket.url", "https://h", "--bitbucket.timeout", "1m"],
            "longer than the poll interval",
        ),
        (
            &[
                "--bitbucket.url",
                "https://h",
                "--web.listen-address",
                "nope",
            ],
            "--web.listen-address",
        ),
        (
            &[
                "--bitbucket.url",
                "https://h",
                "--web.telemetry-path",
                "/probe",
            ],
            "reserved",
        ),
    ];
    for (flags, want) in cases {
        let e = Config::from_args(&args(flags), &no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{flags:?}: {e}");
    }
    assert!(matches!(
        Config::from_args(&args(&[]), &no_env()),
        Err(ConfigError::NoTarget)
    ));
}

#[test]
fn yaml_targets_with_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "pw\n").unwrap();
    let path = dir.path().join("c.yml");
    let yaml = "targets:\n  - name: prod\n    url: https://bb.example.com\n    auth:\n      username: zdu\n      password_file: pw\n    poll_interval: 15s\n  - name: staging\n    url: http://10.0.0.1:7990\n";
    let t = parse_targets_yaml(
        yaml,
        &path,
        Duration::from_secs(10),
        Duration::from_secs(30),
        None,
    )
    .unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].poll_interval(), Duration::from_secs(15));
    assert!(t[0]
        .auth()
        .describe()
        .contains(&dir.path().join("pw").display().to_string()));
    assert_eq!(t[1].poll_interval(), Duration::from_secs(30));
}

#[test]
fn yaml_errors_name_key_and_line() {
    let path = Path::new("/tmp/c.yml");
    let d = Duration::from_secs(10);
    let i = Duration::from_secs(30);
    let e = parse_targets_yaml(
        "targets:\n  - name: a\n    url: http://h\n    pol_interval: 1s\n",
        path,
        d,
        i,
        None,
    )
    .unwrap_err()
    .to_string();
    // A typo of a valid key is named (secret/unknown_key.rs), with the line and the names
    // that would be valid.
    assert!(
        e.contains("unknown field `pol_interval`")
            && e.contains("`poll_interval`")
            && e.contains("line 4"),
        "{e}"
    );
    let e = parse_targets_yaml(
        "targets:\n  - name: a\n    url: http://h\n    timeout: soon\n",
        path,
        d,
        i,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("invalid duration") && e.contains("line 4"),
        "{e}"
    );
    let e = parse_targets_yaml(
        "targets:\n  - name: a\n    url: http://h\n  - name: a\n    url: http://h\n",
        path,
        d,
        i,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("targets[1].name") && e.contains("twice"), "{e}");
    let e = parse_targets_yaml("targets:\n  - name: a\n    url: nope\n", path, d, i, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("targets[0].url"), "{e}");
}

#[test]
fn an_implicit_timeout_is_clamped_to_the_interval_an_explicit_one_is_refused() {
    // Prometheus does the same with scrape_timeout and scrape_interval.
    let c = Config::from_args(
        &args(&["--bitbucket.url", "https://h", "--poll.interval", "5s"]),
        &no_env(),
    )
    .unwrap();
    assert_eq!(c.targets()[0].timeout(), Duration::from_secs(5));
    let c = Config::from_args(
        &args(&["--bitbucket.url", "https://h", "--poll.interval", "1m"]),
        &no_env(),
    )
    .unwrap();
    assert_eq!(c.targets()[0].timeout(), DEFAULT_TIMEOUT);
    let e = Config::from_args(
        &args(&[
            "--bitbucket.url",
            "https://h",
            "--poll.interval",
            "5s",
            "--bitbucket.timeout",
            "10s",
        ]),
        &no_env(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "--bitbucket.timeout: 10s is longer than the poll interval 5s"
    );
    // In a file: a target's own poll_interval clamps the default, its own timeout does not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yml");
    std::fs::write(
        &path,
        "targets:\n  - name: a\n    url: http://h\n    poll_interval: 2s\n",
    )
    .unwrap();
    let file_flag = format!("--config.file={}", path.display());
    let c = Config::from_args(&args(&[&file_flag]), &no_env()).unwrap();
    assert_eq!(c.targets()[0].timeout(), Duration::from_secs(2));
    std::fs::write(
        &path,
        "targets:\n  - name: a\n    url: http://h\n    poll_interval: 2s\n    timeout: 3s\n",
    )
    .unwrap();
    let e = Config::from_args(&args(&[&file_flag]), &no_env())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "targets[0].timeout: 3s is longer than the poll interval 2s"
    );
}

#[test]
fn builders_validate_like_flags() {
    let t = TargetConfig::builder("a", "http://h:7990/")
        .poll_interval(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(t.timeout(), Duration::from_secs(5));
    assert_eq!(t.max_age(), Duration::from_secs(15));
    for bad in [
        TargetConfig::builder("a b", "http://h"),
        TargetConfig::builder("a", "ftp://h"),
        TargetConfig::builder("a", "http://h").timeout(Duration::from_secs(60)),
        TargetConfig::builder("a", "http://h").auth(AuthConfig::Basic {
            username: "u:v".into(),
            password: Arc::new(SecretSource::env("X", "pw".into()).unwrap()),
        }),
    ] {
        assert!(bad.build().is_err());
    }
    assert!(matches!(
        Config::builder(vec![]).build(),
        Err(ConfigError::NoTarget)
    ));
    let e = Config::builder(vec![t.clone(), t.clone()])
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("used twice"), "{e}");
    let e = Config::builder(vec![t.clone()])
        .telemetry_path("/-/ready")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("reserved"), "{e}");
    let c = Config::builder(vec![t]).build().unwrap();
    assert_eq!(c.web().telemetry_path(), "/metrics");
    assert!(c.web().listen_addresses().is_empty());
}

#[test]
fn max_nodes_comes_from_the_flag_or_the_file_and_must_be_positive() {
    let a = args(&["--bitbucket.url", "http://h:7990"]);
    let c = Config::from_args(&a, &no_env()).unwrap();
    assert_eq!(c.targets()[0].max_nodes(), 1000, "the default");
    let a = args(&[
        "--bitbucket.url",
        "http://h:7990",
        "--bitbucket.max-nodes",
        "50",
    ]);
    assert_eq!(
        Config::from_args(&a, &no_env()).unwrap().targets()[0].max_nodes(),
        50
    );
    let a = args(&[
        "--bitbucket.url",
        "http://h:7990",
        "--bitbucket.max-nodes",
        "0",
    ]);
    let e = Config::from_args(&a, &no_env()).unwrap_err().to_string();
    assert!(e.contains("--bitbucket.max-nodes"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yml");
    std::fs::write(
        &path,
        "targets:\n  - name: a\n    url: http://h:7990\n    max_nodes: 12\n  - name: b\n    url: http://h:7991\n",
    )
    .unwrap();
    let a = args(&[
        "--config.file",
        path.to_str().unwrap(),
        "--bitbucket.max-nodes",
        "30",
    ]);
    let c = Config::from_args(&a, &no_env()).unwrap();
    assert_eq!(c.targets()[0].max_nodes(), 12, "the file's key wins");
    assert_eq!(c.targets()[1].max_nodes(), 30, "the flag is the default");
    std::fs::write(
        &path,
        "targets:\n  - name: a\n    url: http://h:7990\n    max_nodes: 0\n",
    )
    .unwrap();
    let e = Config::from_args(&a, &no_env()).unwrap_err().to_string();
    assert!(e.contains("targets[0].max_nodes"), "{e}");
    // A changed cap restarts the target's poller on reload.
    let t = TargetConfig::builder("t", "http://h:7990").build().unwrap();
    let u = TargetConfig::builder("t", "http://h:7990")
        .max_nodes(5)
        .build()
        .unwrap();
    assert!(!t.same_settings(&u));
}

#[test]
fn product_comes_from_the_flag_or_the_file_and_defaults_to_bitbucket() {
    use crate::model::Product;
    let a = args(&["--bitbucket.url", "https://bb.example.com/"]);
    let c = Config::from_args(&a, &no_env()).unwrap();
    assert_eq!(c.targets()[0].product(), Product::Bitbucket);
    for flag in ["--bitbucket.product", "--upstream.product"] {
        let a = args(&[
            "--bitbucket.url",
            "https://j.example.com/jira",
            flag,
            "jira",
        ]);
        let t = Config::from_args(&a, &no_env()).unwrap().targets()[0].clone();
        assert_eq!(t.product(), Product::Jira);
        assert_eq!(
            t.site_endpoint("rest/api/2/cluster/nodes").as_str(),
            "https://j.example.com/jira/rest/api/2/cluster/nodes"
        );
    }
    let path = Path::new("/etc/x/targets.yml");
    let d = Duration::from_secs(10);
    let i = Duration::from_secs(30);
    let yaml = "targets:\n  - name: b\n    url: http://b\n  - name: c\n    url: http://c/wiki\n    product: confluence\n  - name: j\n    url: http://j\n    product: jira\n";
    let t = parse_targets_yaml(yaml, path, d, i, None).unwrap();
    let products: Vec<Product> = t.iter().map(TargetConfig::product).collect();
    assert_eq!(
        products,
        [Product::Bitbucket, Product::Confluence, Product::Jira]
    );
    assert!(!t[0].same_settings(
        &TargetConfig::builder("b", "http://b")
            .product(Product::Jira)
            .build()
            .unwrap()
    ));
    let e = parse_targets_yaml(
        "targets:\n  - name: a\n    url: http://a\n    product: bamboo\n",
        path,
        d,
        i,
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("`jira`") && !e.to_string().contains("bamboo"),
        "{e}"
    );
}
