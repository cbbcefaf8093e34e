//! Unit tests for the .deb writer.
