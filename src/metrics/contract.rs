//! The machine-readable metric contract, `docs/metrics.json`, generated from the catalogue
//! ([`super::catalogue::ALL`]) and golden-tested by `tests/it/metrics_contract.rs`.

use super::catalogue::{products, ALL};
use crate::model::Product;

/// The machine-readable contract (`docs/metrics.json`): every family's sample name, type,
/// help, labels and group, in emission order.
pub fn contract_json() -> String {
    #[derive(serde::Serialize)]
    struct Entry {
        name: String,
        #[serde(rename = "type")]
        kind: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        group: &'static str,
        products: &'static [Product],
    }
    #[derive(serde::Serialize)]
    struct Contract {
        metrics: Vec<Entry>,
    }
    let doc = Contract {
        metrics: ALL
            .iter()
            .map(|f| Entry {
                // A family of one product is named with that product's prefix.
                name: match products(f) {
                    [only] if *only != Product::Bitbucket => {
                        f.sample_name()
                            .replacen("bitbucket_zdu", only.metric_prefix(), 1)
                    }
                    _ => f.sample_name(),
                },
                products: products(f),
                kind: f.kind.as_str(),
                help: f.help,
                labels: f.labels,
                group: f.group.as_str(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n"
}
