//! evenkeel metrics middleware (in progress).
