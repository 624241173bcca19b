//! The machine-readable metric contract, `docs/metrics.json`, generated from the catalogue
//! ([`super::catalogue::ALL`]) and golden-tested by `tests/it/metrics_contract.rs`.

use std::collections::BTreeMap;

use super::catalogue::ALL;
use crate::model::Product;

/// The machine-readable contract (`docs/metrics.json`): every family's sample name, type,
/// help, labels, group and products, in emission order, and for a target family its name
/// and help per product (`by_product`).
pub fn contract_json() -> String {
    #[derive(serde::Serialize)]
    struct AsWritten {
        name: String,
        help: String,
    }
    #[derive(serde::Serialize)]
    struct Entry {
        name: String,
        #[serde(rename = "type")]
        kind: &'static str,
        help: String,
        labels: &'static [&'static str],
        group: &'static str,
        products: &'static [Product],
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        by_product: BTreeMap<Product, AsWritten>,
    }
    #[derive(serde::Serialize)]
    struct Contract {
        metrics: Vec<Entry>,
    }
    let doc = Contract {
        metrics: ALL
            .iter()
            .map(|f| {
                let by_product: BTreeMap<Product, AsWritten> = f
                    .products
                    .iter()
                    .filter_map(|p| f.describe(*p).map(|d| (*p, d)))
                    .map(|(p, d)| {
                        let name = match f.kind {
                            super::Kind::Counter => format!("{}_total", d.name),
                            _ => d.name.into_owned(),
                        };
                        let help = d.help.into_owned();
                        (p, AsWritten { name, help })
                    })
                    .collect();
                // A family of one product is named and described as that product's.
                let (name, help) = match f.products {
                    [only] => (by_product[only].name.clone(), by_product[only].help.clone()),
                    _ => (f.sample_name(), f.help.to_string()),
                };
                Entry {
                    name,
                    products: f.products,
                    kind: f.kind.as_str(),
                    help,
                    labels: f.labels,
                    group: f.group.as_str(),
                    by_product,
                }
            })
            .collect(),
    };
    serde_json::to_string_pretty(&doc).expect("JSON of plain values") + "\n"
}
