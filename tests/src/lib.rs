//! Cross-crate and framework integration tests for evenkeel live in `tests/tests/`.
