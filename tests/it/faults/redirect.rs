//! Redirects in the upstream fault matrix: another host is never followed (the credentials
//! stay), the same origin is.

use super::*;

#[tokio::test]
async fn redirect_to_another_host_is_not_followed_and_credentials_stay() {
    // Another origin: 127.0.0.2 where the loopback range allows it, else another port.
    let other = match Mock::start("127.0.0.2").await {
        Ok(m) => m,
        Err(_) => Mock::start("127.0.0.1").await.unwrap(),
    };
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), FAST_ENOUGH);
    fault_then_recover(
        &mut h,
        &mock,
        Fault::Redirect(other.url()),
        Reason::UnexpectedStatus,
    )
    .await;
    assert!(
        h.last_error_text().is_empty(),
        "recovered: no last error kept"
    );
    let reached = other.seen();
    assert!(
        reached.iter().all(|s| s.authorization.is_none()),
        "credentials followed a redirect to another origin: {reached:?}"
    );
    assert!(
        reached.is_empty(),
        "the cross-origin redirect is not followed at all: {reached:?}"
    );
    // The origin itself did get credentials.
    assert!(mock.seen().iter().all(|s| s.authorization.is_some()));

    // The message names the redirect so the operator can fix the URL.
    mock.set(Fault::Redirect(other.url()));
    h.poll().await;
    let text = h.last_error_text();
    assert!(text.contains("302") && text.contains("redirect"), "{text}");
    assert!(!text.contains(PASSWORD));
}

#[tokio::test]
async fn same_origin_redirect_is_followed() {
    let mock = Mock::start("127.0.0.1").await.unwrap();
    let mut h = Harness::new(&mock.url(), FAST_ENOUGH);
    mock.set(Fault::Redirect(mock.url()));
    h.poll().await;
    h.assert_up("same-origin redirect");
    let seen = mock.seen();
    assert!(
        seen.iter().any(|s| s.path == "/moved/rest/zdu/cluster"),
        "{seen:?}"
    );
}
