//! Build identity: version, git revision and compiler, for `--version`, the landing page,
//! the User-Agent and `bitbucket_zdu_exporter_build_info`.

/// Crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("ZDU_GIT_REVISION");
/// rustc version used.
pub const RUSTC: &str = env!("ZDU_RUSTC_VERSION");
/// `--version` text.
pub const VERSION_LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (revision ",
    env!("ZDU_GIT_REVISION"),
    ", rustc ",
    env!("ZDU_RUSTC_VERSION"),
    ")"
);
/// User-Agent sent to Bitbucket.
pub const USER_AGENT: &str = concat!("bitbucket-zdu-exporter/", env!("CARGO_PKG_VERSION"));
