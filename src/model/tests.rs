use super::*;

#[test]
fn parses_the_documented_example() {
    let body = r#"{ "upgradeModeEnabled": true, "state": "STABLE", "originalVersion": "string", "nodes": [ { "id": "string", "name": "string", "ipAddress": "string", "state": "STARTING", "tasksTotal": 0, "activeUserCount": 0, "buildNumber": "string", "version": "string", "local": true, "portNumber": 0, "links": [ { "rel": "string", "href": "http://example.com" } ] } ], "links": [ { "rel": "string", "href": "http://example.com" } ] }"#;
    let c: Cluster = serde_json::from_str(body).unwrap();
    assert_eq!(c.state, Some(ClusterState::Stable));
    assert_eq!(c.nodes.len(), 1);
    assert_eq!(c.nodes[0].state, Some(NodeState::Starting));
    assert_eq!(c.nodes[0].address(), "string:0");
}

#[test]
fn nulls_missing_fields_unknown_enums_and_wrong_types_do_not_fail() {
    let body = r#"{"upgradeModeEnabled":null,"state":"PAUSED","originalVersion":null,
            "nodes":[{"id":"a","name":"n1","state":"HIBERNATING","tasksTotal":null,
            "activeUserCount":"7","version":null,"buildNumber":8019001,"local":"yes"},
            {"id":"b"}, 42, {"id":"c","tasksTotal":-3,"activeUserCount":[1],"portNumber":7990.0}],
            "extra":{"x":1}}"#;
    let c: Cluster = serde_json::from_str(body).unwrap();
    assert_eq!(c.state, Some(ClusterState::Unknown("PAUSED".into())));
    assert_eq!(c.nodes.len(), 3);
    let n = &c.nodes[0];
    assert_eq!(n.state, Some(NodeState::Unknown("HIBERNATING".into())));
    assert_eq!(n.tasks_total, None);
    assert_eq!(n.active_user_count, None, "a numeric string is not a count");
    assert_eq!(n.build_number, None, "a number is not a string");
    assert_eq!(n.local, None);
    assert_eq!(c.nodes[2].tasks_total, None);
    assert_eq!(c.nodes[2].active_user_count, None);
    assert_eq!(
        c.nodes[2].port_number,
        Some(7990),
        "an integral float is a count"
    );
}

#[test]
fn no_leaf_is_coerced_from_another_type() {
    let body = r#"{"upgradeModeEnabled":"true","state":7,"originalVersion":8.19,
            "nodes":[{"id":1,"name":true,"ipAddress":"10.0.0.1","state":"ACTIVE",
            "tasksTotal":"3","activeUserCount":"0","buildNumber":8019000,"version":8.19,
            "local":"true","portNumber":"5701"},
            {"id":"b","tasksTotal":3,"activeUserCount":2e1,"local":false,"portNumber":5701,
            "buildNumber":"8019000","version":"8.19.0"}]}"#;
    let c: Cluster = serde_json::from_str(body).unwrap();
    assert_eq!(
        (c.upgrade_mode_enabled, &c.state, &c.original_version),
        (None, &None, &None)
    );
    let n = &c.nodes[0];
    assert_eq!((&n.id, &n.name), (&None, &None));
    assert_eq!(n.ip_address.as_deref(), Some("10.0.0.1"));
    assert_eq!(
        (n.tasks_total, n.active_user_count, n.port_number),
        (None, None, None)
    );
    assert_eq!((&n.build_number, &n.version, n.local), (&None, &None, None));
    let n = &c.nodes[1];
    assert_eq!(
        (n.tasks_total, n.active_user_count, n.port_number),
        (Some(3), Some(20), Some(5701))
    );
    assert_eq!(n.local, Some(false));
    assert_eq!(n.version.as_deref(), Some("8.19.0"));
}

#[test]
fn shape_errors_are_decode_errors() {
    assert!(serde_json::from_str::<Cluster>("[]").is_err());
    assert!(serde_json::from_str::<Cluster>(r#"{"state":"STABLE"}"#).is_err());
    assert!(serde_json::from_str::<Cluster>(r#"{"nodes":{}}"#).is_err());
    assert!(serde_json::from_str::<Cluster>(r#"{"nodes":[],"nodes":[]}"#).is_err());
    // A null node list is no node list: the poll fails (decode) rather than reporting a
    // cluster of zero nodes, which would silence every node alert.
    let e =
        Cluster::from_json(br#"{"state":"STABLE","nodes":null}"#, Limits::default()).unwrap_err();
    assert!(matches!(e, DecodeError::Shape(_)), "{e:?}");
    assert!(serde_json::from_str::<Cluster>(r#"{"nodes":null}"#).is_err());
    assert!(serde_json::from_str::<Cluster>(r#"{"nodes":[]}"#).is_ok());
}

fn entries(n: usize) -> String {
    let e = vec![r#"{"id":"x","name":"n","state":"ACTIVE"}"#; n].join(",");
    format!(r#"{{"state":"STABLE","nodes":[{e}]}}"#)
}

#[test]
fn the_node_cap_refuses_the_whole_answer() {
    let limits = Limits {
        max_nodes: 3,
        ..Limits::default()
    };
    assert_eq!(
        Cluster::from_json(entries(3).as_bytes(), limits)
            .unwrap()
            .nodes
            .len(),
        3
    );
    assert_eq!(
        Cluster::from_json(entries(4).as_bytes(), limits),
        Err(DecodeError::TooManyNodes(3))
    );
    // Non-object entries count too, and the cap is met before the rest is parsed: the
    // trailing garbage is never seen.
    let body = br#"{"nodes":[1,2,3,4,{"bad json"#;
    assert_eq!(
        Cluster::from_json(body, limits),
        Err(DecodeError::TooManyNodes(3))
    );
    // The default cap is 1000.
    assert!(Cluster::from_json(entries(1000).as_bytes(), Limits::default()).is_ok());
    assert_eq!(
        Cluster::from_json(entries(1001).as_bytes(), Limits::default()),
        Err(DecodeError::TooManyNodes(1000))
    );
    assert!(serde_json::from_str::<Cluster>(&entries(1001)).is_err());
}

#[test]
fn overlong_label_values_refuse_the_whole_answer() {
    let long = "x".repeat(MAX_LABEL_BYTES + 1);
    let ok = "x".repeat(MAX_LABEL_BYTES);
    let l = Limits::default();
    for field in ["id", "name", "ipAddress", "state", "buildNumber", "version"] {
        let body = format!(r#"{{"nodes":[{{"{field}":"{ok}"}}]}}"#);
        assert!(Cluster::from_json(body.as_bytes(), l).is_ok(), "{field}");
        let body = format!(r#"{{"nodes":[{{"id":"a"}},{{"{field}":"{long}"}}]}}"#);
        assert_eq!(
            Cluster::from_json(body.as_bytes(), l),
            Err(DecodeError::LabelTooLong {
                field,
                max: MAX_LABEL_BYTES
            }),
            "{field}"
        );
    }
    for field in ["state", "originalVersion"] {
        let body = format!(r#"{{"{field}":"{long}","nodes":[]}}"#);
        assert!(matches!(
            Cluster::from_json(body.as_bytes(), l),
            Err(DecodeError::LabelTooLong { .. })
        ));
    }
    let body = format!(r#"{{"state":"STABLE","buildInfo":{{"version":"{long}"}}}}"#);
    assert_eq!(
        StateResponse::from_json(body.as_bytes(), l),
        Err(DecodeError::LabelTooLong {
            field: "version",
            max: MAX_LABEL_BYTES
        })
    );
    let body = format!(r#"{{"state":"STABLE","buildInfo":{{"version":"{ok}"}}}}"#);
    assert!(StateResponse::from_json(body.as_bytes(), l).is_ok());
    // A long string that is not a label (an ignored field) is fine.
    let body = format!(r#"{{"nodes":[{{"id":"a","links":"{long}"}}],"extra":"{long}"}}"#);
    assert!(Cluster::from_json(body.as_bytes(), l).is_ok());
}

fn node(name: &str, ip: &str, state: NodeState, version: Option<&str>) -> Node {
    Node {
        id: Some(format!("{name}-{ip}")),
        name: Some(name.into()),
        ip_address: Some(ip.into()),
        state: Some(state),
        version: version.map(Into::into),
        ..Node::default()
    }
}

#[test]
fn figures_follow_the_domain_rules() {
    let c = Cluster {
        upgrade_mode_enabled: Some(true),
        state: Some(ClusterState::Mixed),
        original_version: Some("8.19.0".into()),
        nodes: vec![
            node("bb-0", "10.0.0.1", NodeState::Active, Some("8.19.1")),
            node("bb-0", "10.0.0.9", NodeState::Offline, None),
            node("bb-1", "10.0.0.2", NodeState::Active, Some("8.19.0")),
            node("bb-2", "10.0.0.3", NodeState::Offline, None),
        ],
    };
    let f = c.figures();
    assert_eq!(f.distinct_versions, 2);
    assert_eq!(f.nodes_upgraded, 1);
    assert_eq!(f.ghosts, vec![1]);
}

#[test]
fn a_live_node_without_a_version_is_not_upgraded() {
    let c = Cluster {
        upgrade_mode_enabled: Some(true),
        state: Some(ClusterState::ReadyToUpgrade),
        original_version: Some("8.19.0".into()),
        nodes: vec![
            node("bb-0", "10.0.0.1", NodeState::Starting, None),
            node("bb-1", "10.0.0.2", NodeState::Active, Some("8.19.0")),
            node("bb-2", "10.0.0.3", NodeState::Active, Some("8.19.1")),
        ],
    };
    assert_eq!(c.figures().nodes_upgraded, 1);
}
