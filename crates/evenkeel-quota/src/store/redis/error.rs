//! What can go wrong building or connecting a [`RedisStore`](super::RedisStore).

use std::fmt;

use evenkeel_core::ConfigError;

/// Why a [`RedisStore`](super::RedisStore) could not be built or connected.
///
/// Match on it to tell a typo in the URL from a server that is down:
///
/// ```
/// use evenkeel_quota::store::{RedisStore, RedisStoreError};
///
/// match RedisStore::builder("http://127.0.0.1:6379").build() {
///     Err(RedisStoreError::InvalidUrl { url, .. }) => assert_eq!(url, "http://127.0.0.1:6379"),
///     other => panic!("expected an invalid URL, got {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisStoreError {
    /// The URL is not a Redis URL (`redis://`, `rediss://`, `unix://`).
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What the client library said about it.
        source: redis::RedisError,
    },
    /// A setting of the builder is out of range.
    Config(ConfigError),
    /// The server could not be reached or did not answer in time
    /// ([`RedisStore::connect`](super::RedisStore::connect) only; a store
    /// built with [`build`](super::RedisStoreBuilder::build) connects
    /// lazily and paces locally until Redis answers).
    Connect {
        /// The URL as given.
        url: String,
        /// What failed; `None` when the server did not answer within the
        /// store's timeout.
        source: Option<redis::RedisError>,
    },
}

impl fmt::Display for RedisStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisStoreError::InvalidUrl { url, source } => {
                write!(f, "invalid Redis URL `{url}`: {source}")
            }
            RedisStoreError::Config(error) => write!(f, "invalid Redis store setting: {error}"),
            RedisStoreError::Connect {
                url,
                source: Some(source),
            } => write!(f, "cannot reach Redis at `{url}`: {source}"),
            RedisStoreError::Connect { url, source: None } => {
                write!(f, "cannot reach Redis at `{url}`: no answer in time")
            }
        }
    }
}

impl std::error::Error for RedisStoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RedisStoreError::InvalidUrl { source, .. } => Some(source),
            RedisStoreError::Config(error) => Some(error),
            RedisStoreError::Connect { source, .. } => source
                .as_ref()
                .map(|s| s as &(dyn std::error::Error + 'static)),
        }
    }
}

impl From<ConfigError> for RedisStoreError {
    fn from(error: ConfigError) -> Self {
        RedisStoreError::Config(error)
    }
}
