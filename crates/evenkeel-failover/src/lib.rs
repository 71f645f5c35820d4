//! evenkeel failover middleware (in progress).
