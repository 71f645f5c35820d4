//! HTTP client metrics for tower.

mod cache;
pub mod future;
mod labels;
mod layer;
mod listener;
pub mod names;
mod record;
mod service;

pub use layer::{DEFAULT_MAX_ADDRESSES, DEFAULT_MAX_ROUTES, MetricsBuilder, MetricsLayer, Scope};
pub use listener::{DEFAULT_MAX_NAMES, MetricsListener};
pub use names::{LabelNames, Naming, describe};
pub use service::Metrics;
