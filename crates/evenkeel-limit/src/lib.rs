//! Concurrency limiting for tower that finds the right limit by itself and
//! listens when the server pushes back.
//!
//! (Full crate documentation below.)

mod algorithm;
pub mod future;
mod gate;
mod handle;
mod layer;
mod reject;
mod service;
mod shared;

pub use algorithm::{
    Aimd, AimdBuilder, Algorithm, Fixed, Gradient, GradientBuilder, Sample, Vegas, VegasBuilder,
};
pub use handle::{LimitHandle, Snapshot};
pub use layer::{LimitBuilder, LimitLayer};
pub use reject::{Reject, RejectWithError, Respond};
pub use service::Limit;

/// The errors this layer returns or refuses to build with.
pub mod error {
    pub use evenkeel_core::BoxError;
    pub use evenkeel_core::error::{ConfigError, Overloaded};
}
