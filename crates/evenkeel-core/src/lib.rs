//! The shared vocabulary of evenkeel (work in progress).

pub mod clock;
