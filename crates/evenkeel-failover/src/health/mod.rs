//! Active health checks: probes on an interval, a verdict with
//! thresholds, and a layer that uses it.

mod check;
mod layer;
mod probe;

pub use check::{
    DEFAULT_HEALTHY_THRESHOLD, DEFAULT_INTERVAL, DEFAULT_TIMEOUT, DEFAULT_UNHEALTHY_THRESHOLD,
    HealthCheck, HealthCheckBuilder, HealthHandle, HealthStatus,
};
pub use layer::{HealthCheckLayer, HealthChecked, HealthCheckedFuture};
pub use probe::{HttpProbe, Probe};
