//! Differential privacy for DP-SGD training.
//!
//! DP-SGD, as the threat model describes it, clips each example's gradient to `max_grad_norm`,
//! adds Gaussian noise of standard deviation `noise_multiplier * max_grad_norm` to the summed
//! batch gradient, and draws each batch by Poisson sampling (every example independently with
//! probability `q`). [`rdp`] accounts for the privacy this buys: ε at a target δ after a number of
//! steps, or the noise multiplier needed for a target ε.
pub mod rdp;

pub use rdp::{
    epsilon, noise_for_epsilon, schedule_from_epochs, Accounting, DpError, NoiseSearch,
    NOISE_RELATIVE_TOLERANCE,
};
