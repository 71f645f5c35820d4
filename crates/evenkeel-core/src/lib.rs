//! The shared vocabulary of evenkeel: what an attempt's outcome means, how to
//! classify it, and the building blocks that several middleware crates need.
//!
//! # Overview
//!
//! Retry, concurrency limiting, quota pacing, failover and metrics all act on
//! the same question: *what did that attempt tell us?* This crate answers it
//! once, so a 429 means the same thing in every layer.
//!
//! - [`Outcome`]: success, rate-limited, overloaded, server error, client
//!   error, or a [`Failure`] split by whether the request can have reached
//!   the server ([`Sent::Never`] vs [`Sent::Maybe`]).
//! - [`Classify`]: turns a response or an error into an `Outcome`.
//!   [`HttpClassifier`] (status, `Retry-After` and its relatives,
//!   `x-should-retry`) and [`GrpcClassifier`] (`grpc-status`,
//!   `grpc-retry-pushback-ms`) are ready; [`classify_error`] walks
//!   `source()` chains of hyper, hyper-util, io and TLS errors.
//! - [`resend`]: the one rule for when a request may be sent again, shared by
//!   retry and failover so neither duplicates a non-idempotent request.
//! - [`body::Replay`]: request bodies that can be sent more than once without
//!   `Clone`, buffered lazily up to a cap.
//! - [`clock`]: tokio's clock, and wall-clock time on tokio's timeline, so
//!   `tokio::time::pause` drives everything.
//! - [`rng::Jitter`]: seedable randomness for jitter and balancing.
//! - [`timer::LazyTimer`]: a timer made only when a wait is needed.
//! - [`event`]: the events layers report (retries, limits, quota waits,
//!   failovers) and the [`Listener`](event::Listener) that receives them.
//! - [`cooldown::Cooldown`]: how a balancer asks whether an endpoint is
//!   waiting out a quota.
//! - [`error`]: the errors several layers produce or recognise.
//! - [`ext`] and [`observe`]: the [`AttemptContext`](ext::AttemptContext)
//!   every request carries down (attempt, deadline) and the
//!   [`Verdict`](verdict::Verdict) each attempt's answer leaves in it on the
//!   way up, judged once by an [`Observe`](observe::Observe) at the bottom.
//! - [`sse`]: streamed answers, whose verdict can change after a `200`
//!   head: errors inside an event stream, before and after content.
//!
//! # Example
//!
//! ```
//! use evenkeel_core::{Classify, HttpClassifier, Outcome};
//! use std::time::Duration;
//!
//! let response = http::Response::builder()
//!     .status(429)
//!     .header("retry-after", "15")
//!     .body(())
//!     .unwrap();
//! let outcome = HttpClassifier::new().classify_response(&response);
//! assert!(matches!(outcome, Outcome::RateLimited(_)));
//! assert_eq!(outcome.server_wait(), Some(Duration::from_secs(15)));
//! // A 429 means the server did not process the request: any method may be resent.
//! assert!(evenkeel_core::resend::may_resend(&outcome, &http::Method::POST, response.headers()));
//! ```
//!
//! # Feature flags
//!
//! - `hyper` (off by default): [`classify_error`] recognises
//!   `hyper::Error` (`is_canceled`, `is_incomplete_message`, `is_timeout`)
//!   and hyper-util's legacy client error (`is_connect`) by their types.
//!   The `evenkeel` umbrella turns it on with its `hyper` connector.

pub mod body;
mod classify;
pub mod clock;
pub mod cooldown;
pub mod error;
pub mod event;
pub mod ext;
pub mod observe;
mod outcome;
pub mod resend;
pub mod rng;
pub mod sse;
pub mod timer;
pub mod verdict;

pub use classify::{
    Classify, GrpcClassifier, HttpClassifier, classify_error, classify_grpc_status,
    classify_status, read_signal,
};
pub use error::{BoxError, ConfigError};
pub use outcome::{Failure, FailureKind, Outcome, Sent, Signal};
