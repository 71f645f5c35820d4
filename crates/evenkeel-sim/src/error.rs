//! The error the in-process [`Sim`](crate::Sim) service fails with.
//!
//! Every [`SimError`] carries a [`std::io::Error`] as its
//! [`source`](std::error::Error::source), so a classifier that walks the
//! source chain looking for an `io::ErrorKind` sees the same thing it would
//! see from a real socket: `ConnectionReset` for an injected reset or a
//! request cut off by a kill, `ConnectionRefused` while the sim is killed.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// A boxed error, as tower passes them around.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a call to the in-process sim failed instead of answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimErrorKind {
    /// An injected fault: the connection was reset before an answer
    /// (source kind [`io::ErrorKind::ConnectionReset`]).
    Reset,
    /// The request was in flight when the sim was killed
    /// (source kind [`io::ErrorKind::ConnectionReset`]).
    Aborted,
    /// The sim is killed and refuses calls
    /// (source kind [`io::ErrorKind::ConnectionRefused`]).
    Refused,
    /// Reading the request body failed; the body's error is in the chain
    /// (source kind [`io::ErrorKind::Other`]).
    Body,
}

impl SimErrorKind {
    /// The [`io::ErrorKind`] of the [`io::Error`] this kind carries.
    pub fn io_kind(self) -> io::ErrorKind {
        match self {
            SimErrorKind::Reset | SimErrorKind::Aborted => io::ErrorKind::ConnectionReset,
            SimErrorKind::Refused => io::ErrorKind::ConnectionRefused,
            SimErrorKind::Body => io::ErrorKind::Other,
        }
    }

    fn message(self) -> &'static str {
        match self {
            SimErrorKind::Reset => "connection reset by the sim (injected fault)",
            SimErrorKind::Aborted => "connection dropped: the sim was killed mid-request",
            SimErrorKind::Refused => "connection refused: the sim is killed",
            SimErrorKind::Body => "reading the request body failed",
        }
    }
}

/// A call to the in-process sim failed; see [`kind`](Self::kind).
///
/// Its [`source`](StdError::source) is an [`io::Error`] of kind
/// [`SimErrorKind::io_kind`]. Test for it with `err.is::<SimError>()` on a
/// boxed error, or convert it into an `io::Error` with `From`.
#[derive(Debug)]
pub struct SimError {
    kind: SimErrorKind,
    io: io::Error,
}

impl SimError {
    pub(crate) fn new(kind: SimErrorKind) -> Self {
        Self {
            kind,
            io: io::Error::new(kind.io_kind(), kind.message()),
        }
    }

    pub(crate) fn body(err: BoxError) -> Self {
        Self {
            kind: SimErrorKind::Body,
            io: io::Error::other(err),
        }
    }

    /// Why the call failed.
    pub fn kind(&self) -> SimErrorKind {
        self.kind
    }

    /// The [`io::ErrorKind`] of the source: `ConnectionReset`,
    /// `ConnectionRefused` or `Other`.
    pub fn io_kind(&self) -> io::ErrorKind {
        self.io.kind()
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.message())
    }
}

impl StdError for SimError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.io)
    }
}

impl From<SimError> for io::Error {
    fn from(err: SimError) -> Self {
        err.io
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io_kind_in_chain(err: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return Some(io.kind());
            }
            cur = e.source();
        }
        None
    }

    #[test]
    fn source_chain_carries_the_io_kind() {
        for (kind, io) in [
            (SimErrorKind::Reset, io::ErrorKind::ConnectionReset),
            (SimErrorKind::Aborted, io::ErrorKind::ConnectionReset),
            (SimErrorKind::Refused, io::ErrorKind::ConnectionRefused),
        ] {
            let err = SimError::new(kind);
            assert_eq!(err.kind(), kind);
            assert_eq!(err.io_kind(), io);
            let boxed: BoxError = Box::new(err);
            assert!(boxed.is::<SimError>());
            assert_eq!(io_kind_in_chain(&*boxed), Some(io));
            let back: io::Error = (*boxed.downcast::<SimError>().unwrap()).into();
            assert_eq!(back.kind(), io);
        }
    }

    #[test]
    fn body_errors_keep_the_cause() {
        let cause = io::Error::new(io::ErrorKind::UnexpectedEof, "client went away");
        let err = SimError::body(Box::new(cause));
        assert_eq!(err.kind(), SimErrorKind::Body);
        assert_eq!(err.io_kind(), io::ErrorKind::Other);
        let io = err.source().unwrap().downcast_ref::<io::Error>().unwrap();
        assert!(io.to_string().contains("client went away"));
    }
}
