//! evenkeel quota middleware (in progress).
