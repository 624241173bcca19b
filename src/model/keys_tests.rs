//! Unit tests of `model/keys.rs` (issue 18 items 2 and "also seen").

use super::*;

fn node(id: Option<&str>, name: &str, ip: &str, port: Option<u64>) -> Node {
    Node {
        id: id.map(str::to_string),
        name: Some(name.to_string()),
        ip_address: Some(ip.to_string()),
        port_number: port,
        ..Node::default()
    }
}

fn keys(ids: &[&str]) -> Vec<String> {
    let c = Cluster {
        nodes: ids
            .iter()
            .map(|i| node(Some(i), "n", "10.0.0.1", None))
            .collect(),
        ..Cluster::default()
    };
    c.node_keys()
}

#[test]
fn repeated_ids_and_a_literal_suffix_never_collide() {
    let k = keys(&["x", "x", "x#2"]);
    assert_eq!(k, ["x", "x#3", "x#2"]);
    let k = keys(&["x#2", "x", "x", "x", "x#3"]);
    let set: std::collections::HashSet<&String> = k.iter().collect();
    assert_eq!(set.len(), k.len(), "{k:?}");
}

#[test]
fn keys_and_addresses_stay_within_the_label_cap() {
    let long = "n".repeat(MAX_LABEL_BYTES);
    let ip = "1".repeat(MAX_LABEL_BYTES);
    let n = node(None, &long, &ip, Some(u64::MAX));
    assert!(
        n.address().len() <= MAX_LABEL_BYTES,
        "{}",
        n.address().len()
    );
    let c = Cluster {
        nodes: vec![n.clone(), n.clone(), n],
        ..Cluster::default()
    };
    let k = c.node_keys();
    assert!(k.iter().all(|k| k.len() <= MAX_LABEL_BYTES), "{k:?}");
    let set: std::collections::HashSet<&String> = k.iter().collect();
    assert_eq!(set.len(), 3);
    let id = "é".repeat(MAX_LABEL_BYTES / 2);
    let k = keys(&[&id, &id]);
    assert!(k.iter().all(|k| k.len() <= MAX_LABEL_BYTES), "{k:?}");
}
