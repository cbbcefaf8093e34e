//! Tests of `nsroot run`.
