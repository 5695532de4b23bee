//! Detector (to be written).
use super::{Ctx, Output};

/// Runs the detector.
pub fn detect(_ctx: &Ctx) -> Output {
    Output::default()
}
