//! The exporter's HTTP side: `/metrics`, `/probe`, `/-/healthy`, `/-/ready`, `/-/reload`,
//! the pages (`/`, `/upgrade`) and the JSON API.
//!
//! | module | what it holds |
//! |---|---|
//! | `router` | the routes and the request limit |
//! | `state` | [`AppState`], what the handlers share, the one scrape cache among it |
//! | `handlers` | one function per route |
//! | `negotiate` | content negotiation (`Accept`, `Accept-Encoding`) and exposition responses |
//! | `serve` | the hyper serve loop and its listeners |
//! | `connections` | the table of open connections that makes room at the cap |
//! | `assets` | the pages' script and style as files, and the default Content-Security-Policy |
//! | `lifecycle` | `/-/reload`'s refusal of browser requests (CSRF, DNS rebinding) |

pub use crate::metrics::{render, Format, OPENMETRICS, TEXT_004};
pub use handlers::metrics_registry;
pub use negotiate::{accepts_gzip, negotiate};
pub use router::{router, router_with};
pub use serve::{bind_all, serve, serve_with, ServeOptions};
pub use state::AppState;

pub mod assets;
mod connections;
mod handlers;
pub mod lifecycle;
mod negotiate;
mod router;
mod serve;
mod state;
