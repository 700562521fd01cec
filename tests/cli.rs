//! End-to-end tests of the `eqopt` binary (placeholder while building).
