//! evenkeel limit middleware (in progress).
