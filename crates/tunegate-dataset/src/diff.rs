//! Record-level diff.
