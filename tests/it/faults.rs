//! The upstream fault matrix (issue 4, part 2).
//!
//! Each test starts a mock Bitbucket on loopback (raw TCP, so it can misbehave at the byte
//! level; TLS cases wrap the same mock in tokio-rustls with certificates made at test time by
//! rcgen), drives a real [`Poller`] through good poll → fault → good poll, and checks what
//! `/metrics` says after each: the right `reason` counted, `bitbucket_zdu_up` 0 (or the data
//! kept where the payload was still good), no panic, bounded reads, and `up` back to 1 on the
//! next good poll. No timing is asserted tightly: the slow cases use a 2 s request timeout and
//! only check that a poll ends at all (within a minute).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use bitbucket_zdu_exporter::client::{Reason, ZduClient};
use bitbucket_zdu_exporter::config::{AuthConfig, TargetConfig, TlsConfig};
use bitbucket_zdu_exporter::poller::Poller;
use bitbucket_zdu_exporter::secret::SecretSource;
use bitbucket_zdu_exporter::server::Format;
use bitbucket_zdu_exporter::snapshot::{Endpoint, TargetShared};
use bitbucket_zdu_exporter::tracker::StateStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const USER: &str = "zdu-monitor";
const PASSWORD: &str = "fault-matrix-S3cret-7Qx";
/// Request timeout of the slow cases; everything else uses [`FAST_ENOUGH`].
const SLOW_TIMEOUT: Duration = Duration::from_secs(2);
/// Request timeout of the cases where the upstream answers at once (generous: 2 cores).
const FAST_ENOUGH: Duration = Duration::from_secs(20);

const LOGIN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Log in - SSO</title></head><body><form method=\"post\" action=\"/login\"><input name=\"username\"><input type=\"password\" name=\"password\"></form></body></html>\n";
const NOT_CLUSTERED: &str = r#"{"errors":[{"context":null,"message":"Rolling upgrades feature requires a clustered installation.","exceptionName":null}]}"#;
const AUTH_FAILED: &str = r#"{"errors":[{"context":null,"message":"Authentication failed. Please check your credentials and try again.","exceptionName":"com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException"}]}"#;
const NO_PERMISSION: &str = r#"{"errors":[{"context":null,"message":"You are not permitted to access this resource","exceptionName":"com.atlassian.bitbucket.AuthorisationException"}]}"#;

/// A poller against one URL, and what `/metrics` says about it.
struct Harness {
    shared: Arc<TargetShared>,
    poller: Poller,
}

fn target(url: &str, timeout: Duration, ca_file: Option<PathBuf>) -> TargetConfig {
    TargetConfig::builder("bb", url)
        .auth(AuthConfig::Basic {
            username: USER.into(),
            password: Arc::new(SecretSource::env("TEST_PASSWORD", PASSWORD.into()).unwrap()),
        })
        .tls(TlsConfig {
            ca_file,
            insecure_skip_verify: false,
        })
        .timeout(timeout)
        .poll_interval(Duration::from_secs(30))
        .max_age(Duration::from_secs(600))
        .build()
        .unwrap()
}

impl Harness {
    fn new(url: &str, timeout: Duration) -> Self {
        Self::with_client(ZduClient::new(target(url, timeout, None)).unwrap())
    }

    fn with_client(client: ZduClient) -> Self {
        let store = Arc::new(StateStore::in_memory());
        let shared = TargetShared::new(client.target().clone(), &store.get("bb"));
        let poller = Poller::new(client, shared.clone(), store);
        Harness { shared, poller }
    }

    async fn poll(&mut self) {
        tokio::time::timeout(Duration::from_secs(60), self.poller.poll_once())
            .await
            .expect("a poll must end (timeout applied to every request)");
    }

    fn metrics(&self) -> String {
        render_target(&self.shared, Format::Text004)
    }

    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        value(&self.metrics(), name, labels)
    }

    fn up(&self) -> f64 {
        self.sample("bitbucket_zdu_up", &[])
            .expect("up is always there")
    }

    fn errors(&self, endpoint: &str, reason: Reason) -> f64 {
        let labels = [("endpoint", endpoint), ("reason", reason.as_str())];
        self.sample("bitbucket_zdu_poll_errors_total", &labels)
            .expect("every reason is pre-declared")
    }

    fn last_error_reasons(&self) -> Vec<String> {
        samples(&self.metrics())
            .into_iter()
            .filter(|s| s.name == "bitbucket_zdu_last_error_info")
            .flat_map(|s| s.labels.into_iter().filter(|(k, _)| k == "reason"))
            .map(|(_, v)| v)
            .collect()
    }

    fn last_error_text(&self) -> String {
        self.shared.snapshot.load().endpoints[Endpoint::Cluster]
            .last_error
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn assert_up(&self, context: &str) {
        let m = self.metrics();
        assert_eq!(self.up(), 1.0, "{context}: up\n{m}");
        assert!(
            self.last_error_reasons().is_empty(),
            "{context}: no last_error_info when up\n{m}"
        );
        assert_eq!(
            value(&m, "bitbucket_zdu_cluster_state", &[("state", "STABLE")]),
            Some(1.0),
            "{context}: STABLE\n{m}"
        );
    }

    fn assert_no_secret(&self) {
        let text = format!(
            "{}\n{}\n{:?}",
            self.metrics(),
            self.last_error_text(),
            self.shared.snapshot.load()
        );
        assert!(!text.contains(PASSWORD), "password leaked:\n{text}");
    }
}

/// good poll → `fault` → good poll; checks reason, up, counters and recovery.
async fn fault_then_recover(h: &mut Harness, mock: &Mock, fault: Fault, want: Reason) {
    let name = format!("{fault:?}");
    mock.set(Fault::Good);
    h.poll().await;
    h.assert_up(&format!("{name}: before"));
    let before = h.errors("cluster", want);

    mock.set(fault);
    h.poll().await;
    let m = h.metrics();
    assert_eq!(h.up(), 0.0, "{name}: up during the fault\n{m}");
    assert_eq!(
        h.last_error_reasons(),
        vec![want.as_str().to_string()],
        "{name}: last_error_info\n{m}\nerror: {}",
        h.last_error_text()
    );
    assert_eq!(
        h.errors("cluster", want),
        before + 1.0,
        "{name}: poll_errors_total\n{m}"
    );
    assert!(
        !m.contains("bitbucket_zdu_nodes{"),
        "{name}: no cluster data while down\n{m}"
    );
    h.assert_no_secret();
    let text = h.last_error_text();

    mock.set(Fault::Good);
    h.poll().await;
    h.assert_up(&format!("{name}: after"));
    assert_eq!(
        h.errors("cluster", want),
        before + 1.0,
        "{name}: counters are not reset by recovery"
    );
    assert_eq!(
        h.sample("bitbucket_zdu_polls_total", &[("endpoint", "cluster")]),
        Some(3.0)
    );
    eprintln!("matrix: {name} -> reason={want} up=0 ({text}) -> recovered up=1");
}

async fn matrix_case(fault: Fault, want: Reason, timeout: Duration) {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), timeout);
    fault_then_recover(&mut h, &mock, fault, want).await;
}

// ---- timing faults -------------------------------------------------------------------

#[tokio::test]
async fn accepts_and_never_answers_is_a_timeout() {
    matrix_case(Fault::Hang, Reason::Timeout, SLOW_TIMEOUT).await;
}

#[tokio::test]
async fn answers_slower_than_the_timeout_is_a_timeout() {
    matrix_case(Fault::Slow(SLOW_TIMEOUT * 3), Reason::Timeout, SLOW_TIMEOUT).await;
}

#[tokio::test]
async fn body_trickled_byte_by_byte_is_a_timeout() {
    // The timeout covers the whole request, body included: a trickle cannot hold a poll open.
    matrix_case(Fault::Trickle, Reason::Timeout, SLOW_TIMEOUT).await;
}

// ---- connection faults ---------------------------------------------------------------

#[tokio::test]
async fn connection_reset_is_connect() {
    matrix_case(Fault::Reset, Reason::Connect, FAST_ENOUGH).await;
}

#[tokio::test]
async fn connection_cut_mid_body_is_connect() {
    matrix_case(Fault::CutMidBody, Reason::Connect, FAST_ENOUGH).await;
}

#[tokio::test]
async fn nothing_listening_is_connect_and_recovers_when_it_comes_back() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let mut h = Harness::new(&format!("http://{addr}"), FAST_ENOUGH);
    h.poll().await;
    assert_eq!(h.up(), 0.0);
    assert_eq!(h.last_error_reasons(), vec!["connect"]);
    assert_eq!(h.errors("cluster", Reason::Connect), 1.0);
    assert_eq!(h.errors("state", Reason::Connect), 1.0);
    h.assert_no_secret();
    // Bitbucket comes back on the same port (if another test took it meanwhile, stop here).
    let Ok(l) = TcpListener::bind(addr).await else {
        return;
    };
    let mock = Mock::start_inner(l, None).unwrap();
    mock.set(Fault::Good);
    h.poll().await;
    h.assert_up("after the upstream came back");
}

// ---- HTTP status faults --------------------------------------------------------------

#[tokio::test]
async fn server_errors_500_502_503() {
    for status in [500, 502, 503] {
        let body = if status == 500 {
            r#"{"errors":[{"context":null,"message":"An internal error occurred","exceptionName":"java.lang.NullPointerException"}]}"#
        } else {
            ""
        };
        matrix_case(
            Fault::Status(status, body),
            Reason::ServerError,
            FAST_ENOUGH,
        )
        .await;
    }
}

#[tokio::test]
async fn refused_credentials_401() {
    matrix_case(
        Fault::Status(401, AUTH_FAILED),
        Reason::Unauthorized,
        FAST_ENOUGH,
    )
    .await;
    matrix_case(Fault::Status(401, ""), Reason::Unauthorized, FAST_ENOUGH).await;
}

#[tokio::test]
async fn missing_sys_admin_403() {
    matrix_case(
        Fault::Status(403, NO_PERMISSION),
        Reason::Forbidden,
        FAST_ENOUGH,
    )
    .await;
}

#[tokio::test]
async fn not_clustered_as_401_or_403() {
    for status in [401, 403] {
        matrix_case(
            Fault::Status(status, NOT_CLUSTERED),
            Reason::NotClustered,
            FAST_ENOUGH,
        )
        .await;
    }
}

#[tokio::test]
async fn no_zdu_api_404_and_other_statuses() {
    matrix_case(Fault::Status(404, ""), Reason::NotFound, FAST_ENOUGH).await;
    matrix_case(
        Fault::Status(409, ""),
        Reason::UnexpectedStatus,
        FAST_ENOUGH,
    )
    .await;
    matrix_case(
        Fault::Status(418, "{}"),
        Reason::UnexpectedStatus,
        FAST_ENOUGH,
    )
    .await;
}

// ---- payload faults ------------------------------------------------------------------

#[tokio::test]
async fn html_login_page_with_200_is_not_json() {
    matrix_case(
        Fault::Body(Some("text/html;charset=UTF-8"), LOGIN_PAGE),
        Reason::NotJson,
        FAST_ENOUGH,
    )
    .await;
    // Even when the proxy claims JSON, or says nothing.
    matrix_case(
        Fault::Body(Some("application/json"), LOGIN_PAGE),
        Reason::NotJson,
        FAST_ENOUGH,
    )
    .await;
    matrix_case(Fault::Body(None, LOGIN_PAGE), Reason::NotJson, FAST_ENOUGH).await;
}

#[tokio::test]
async fn malformed_truncated_empty_and_wrong_shape_json_is_decode() {
    let truncated: &'static str = &CLUSTER_JSON[..CLUSTER_JSON.len() / 2];
    for body in [
        r#"{"nodes": [ {"id": "a", }"#, // malformed
        truncated,                      // truncated document, complete HTTP response
        "",                             // empty
        "   \n",                        // whitespace only
        "null",
        "[]",
        r#"{"state":"STABLE"}"#,      // no node list
        r#"{"nodes":{"id":"a"}}"#,    // nodes not an array
        "{\"nodes\":[\"\u{0}\"]]",    // garbage after a valid prefix
        r#"{"nodes":[],"nodes":[]}"#, // duplicate key
    ] {
        matrix_case(
            Fault::Body(Some("application/json"), body),
            Reason::Decode,
            FAST_ENOUGH,
        )
        .await;
    }
}

#[tokio::test]
async fn fifty_megabytes_are_cut_at_the_body_cap() {
    for chunked in [true, false] {
        let mock = Mock::start("127.0.0.1").await.unwrap();
        let mut h = Harness::new(&mock.url(), FAST_ENOUGH);
        fault_then_recover(&mut h, &mock, Fault::Huge { chunked }, Reason::BodyTooLarge).await;
        // Both endpoints got the huge answer; each stopped reading near the 8 MiB cap (plus
        // what the kernel buffers on loopback), far from the 50 MB on offer.
        let sent = wait_for(|| {
            let v = mock.huge_sent.lock().unwrap().clone();
            (v.len() >= 2).then_some(v)
        })
        .await;
        for s in sent {
            assert!(
                s < 40 * 1024 * 1024,
                "chunked={chunked}: the client read {s} bytes of a 50 MB body"
            );
        }
    }
}

#[tokio::test]
async fn a_small_cap_applies_too() {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let client = ZduClient::new(target(&mock.url(), FAST_ENOUGH, None))
        .unwrap()
        .with_body_limit(CLUSTER_JSON.len() + 10);
    let mut h = Harness::with_client(client);
    // The good answers fit; a bigger one does not.
    const BIG: &str = r#"{"nodes":[],"padding":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    fault_then_recover(
        &mut h,
        &mock,
        Fault::Body(Some("application/json"), BIG),
        Reason::BodyTooLarge,
    )
    .await;
}

/// A `/cluster` body with `n` tiny node entries, and the good `/state`.
fn many_nodes(n: usize) -> Fault {
    let entries = vec![r#"{"id":"x","name":"n","state":"ACTIVE"}"#; n].join(",");
    let cluster = format!(r#"{{"state":"STABLE","nodes":[{entries}]}}"#);
    Fault::Scripted(Script(Arc::new(move |_, head: &str| {
        let body = if head.contains("/rest/zdu/cluster") {
            cluster.clone()
        } else {
            STATE_JSON.to_string()
        };
        Canned {
            status: 200,
            content_type: Some("application/json".into()),
            extra_headers: String::new(),
            body,
        }
    })))
}

#[tokio::test]
async fn more_node_entries_than_the_cap_is_too_many_nodes() {
    // Issue 10 finding 1: an 8 MiB body of tiny entries passes the body cap; the node cap
    // refuses it whole (no partial data), at the default of 1000 and at a configured cap.
    matrix_case(many_nodes(1001), Reason::TooManyNodes, FAST_ENOUGH).await;
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let t = TargetConfig::builder("bb", mock.url())
        .max_nodes(3)
        .build()
        .unwrap();
    let mut at_cap = Harness::with_client(ZduClient::new(t.clone()).unwrap());
    mock.set(many_nodes(3));
    at_cap.poll().await;
    assert_eq!(at_cap.up(), 1.0, "at the cap is fine");
    let mut h = Harness::with_client(ZduClient::new(t).unwrap());
    fault_then_recover(&mut h, &mock, many_nodes(4), Reason::TooManyNodes).await;
    assert!(h.last_error_text().is_empty());
}

#[tokio::test]
async fn a_label_value_over_256_bytes_is_label_too_long() {
    let long = "v".repeat(257);
    let cluster = CLUSTER_JSON.replacen("8.19.0", &long, 1);
    let fault = Fault::Body(
        Some("application/json"),
        Box::leak(cluster.into_boxed_str()),
    );
    matrix_case(fault, Reason::LabelTooLong, FAST_ENOUGH).await;
}

#[tokio::test]
async fn a_null_node_list_is_decode() {
    // Issue 10 finding 8: `"nodes": null` used to give up 1 with zero nodes, silencing
    // every node alert; it is no node list, like a missing one.
    matrix_case(
        Fault::Body(
            Some("application/json"),
            r#"{"upgradeModeEnabled":false,"state":"STABLE","nodes":null}"#,
        ),
        Reason::Decode,
        FAST_ENOUGH,
    )
    .await;
}

#[tokio::test]
async fn a_same_origin_redirect_loop_is_unexpected_status() {
    // Issue 10 finding 8: a loop used to be reported as `connect`.
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), FAST_ENOUGH);
    let looping = Fault::Scripted(Script(Arc::new(|i, _: &str| Canned {
        status: 302,
        content_type: None,
        extra_headers: format!("Location: /loop/{i}\r\n"),
        body: String::new(),
    })));
    fault_then_recover(&mut h, &mock, looping, Reason::UnexpectedStatus).await;
}

#[tokio::test]
async fn unknown_enums_nulls_wrong_types_and_extra_fields_keep_the_data() {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), FAST_ENOUGH);
    mock.set(Fault::Body(
        Some("application/json"),
        r#"{"upgradeModeEnabled":"true","state":"PAUSED_FOR_LUNCH","originalVersion":8.19,
            "hasFinalizationTasks":false,"finalization":{"lastRequested":null,"errors":[]},
            "nodes":[
              {"id":"a1","name":"bitbucket-0","ipAddress":"10.0.0.10","state":"HIBERNATING",
               "tasksTotal":"3","activeUserCount":null,"buildNumber":8019000,"version":null,
               "local":"yes","portNumber":"5701","links":null,"newField":{"deep":[1,2,3]}},
              {"id":null,"name":"bitbucket-1","ipAddress":"10.0.0.11","state":null,
               "tasksTotal":-1,"activeUserCount":1e3,"version":["8.19.0"]},
              "not-a-node", 7, null,
              {"id":"c3","name":"bitbucket-2","ipAddress":"10.0.0.12","state":"OFFLINE"}
            ],
            "links":"unexpected","somethingNew":{"x":1}}"#,
    ));
    h.poll().await;
    let m = h.metrics();
    assert_eq!(h.up(), 1.0, "lenient payloads keep the target up\n{m}");
    assert!(h.last_error_reasons().is_empty(), "{m}");
    assert_eq!(
        value(&m, "bitbucket_zdu_cluster_state", &[("state", "OTHER")]),
        Some(1.0),
        "{m}"
    );
    for field in ["cluster_state", "node_state"] {
        assert_eq!(
            value(
                &m,
                "bitbucket_zdu_unknown_enum_values_total",
                &[("field", field)]
            ),
            Some(1.0),
            "{field}\n{m}"
        );
    }
    // Wrong-typed values are dropped, numeric strings and "true" included (README,
    // "Never crashes on input"): no coercion from one JSON type to another.
    assert_eq!(
        h.sample("bitbucket_zdu_upgrade_mode_enabled", &[]),
        None,
        "\"true\" is not a boolean\n{m}"
    );
    let view = h.shared.snapshot.load().cluster.clone().expect("data kept");
    assert_eq!(view.cluster.nodes.len(), 3, "non-object entries skipped");
    assert_eq!(
        view.cluster.nodes[0].tasks_total, None,
        "\"3\" is not a count"
    );
    assert_eq!(
        view.cluster.nodes[0].port_number, None,
        "\"5701\" is not a count"
    );
    assert_eq!(
        view.cluster.nodes[0].build_number, None,
        "a number is not a string"
    );
    assert_eq!(view.cluster.original_version, None, "8.19 is not a string");
    assert_eq!(view.cluster.nodes[1].active_user_count, Some(1000));
    assert_eq!(view.cluster.nodes[1].version, None);
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            l.is_ascii() && !l.contains('\n'),
            "label values stay safe: {l}"
        );
    }
    mock.set(Fault::Good);
    h.poll().await;
    h.assert_up("after the odd payload");
}

#[tokio::test]
async fn a_failing_state_endpoint_keeps_the_cluster_data() {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), FAST_ENOUGH);
    mock.set(Fault::StateOnly(Box::new(Fault::Status(500, ""))));
    h.poll().await;
    h.assert_up("state failing only");
    assert_eq!(h.errors("state", Reason::ServerError), 1.0);
    assert_eq!(h.errors("cluster", Reason::ServerError), 0.0);
    assert!(!h.metrics().contains("bitbucket_zdu_responder_info{"));
    mock.set(Fault::Good);
    h.poll().await;
    h.assert_up("state recovered");
    assert!(h.metrics().contains("bitbucket_zdu_responder_info{"));
}

/// A poll against an upstream whose one endpoint hangs: it ends within one timeout (the
/// poll's deadline; the calls run one after the other on one connection, the second
/// starting anyway after its head start), the hung endpoint fails as `timeout` and the other
/// answers.
async fn one_endpoint_hangs(fault: Fault, hung: &str, answered: &str) {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), SLOW_TIMEOUT);
    mock.set(fault);
    let started = std::time::Instant::now();
    h.poll().await;
    let took = started.elapsed();
    // Two timeouts in turn would take 2 × SLOW_TIMEOUT; one is the deadline.
    assert!(took < SLOW_TIMEOUT * 2, "the poll took {took:?}");
    assert_eq!(h.errors(hung, Reason::Timeout), 1.0, "{}", h.metrics());
    for reason in [Reason::Timeout, Reason::Connect] {
        assert_eq!(h.errors(answered, reason), 0.0, "{}", h.metrics());
    }
    let polls = |ep| h.sample("bitbucket_zdu_polls_total", &[("endpoint", ep)]);
    assert_eq!((polls(hung), polls(answered)), (Some(1.0), Some(1.0)));
    h.assert_no_secret();
}

#[tokio::test]
async fn a_hung_cluster_endpoint_costs_one_timeout_and_the_state_still_answers() {
    let fault = Fault::ClusterOnly(Box::new(Fault::Hang));
    one_endpoint_hangs(fault, "cluster", "state").await;
}

#[tokio::test]
async fn a_hung_state_endpoint_costs_one_timeout_and_the_cluster_still_answers() {
    let fault = Fault::StateOnly(Box::new(Fault::Hang));
    one_endpoint_hangs(fault, "state", "cluster").await;
}

// ---- redirects -----------------------------------------------------------------------

async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..600 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within a minute");
}

mod redirect;
mod tls;
