//! `tunegate dp`: DP-SGD privacy accounting (RDP accountant of `tunegate_ml::dp`).
//!
//! `dp epsilon` reports ε at a δ for a noise multiplier and a schedule; `dp noise` finds the
//! smallest noise multiplier that meets a target ε. The schedule is either `--sample-rate` and
//! `--steps`, or `--epochs`, `--dataset-size` and `--batch-size` (q = B/N, steps = ⌈E·N/B⌉).
//! Bad arguments exit 2 with a message naming the flag.
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use tunegate_ml::dp::{self, Accounting};

/// `tunegate dp ...`
#[derive(Subcommand)]
pub enum DpCmd {
    /// ε at a target δ of DP-SGD with a given noise multiplier (Poisson sampling, RDP
    /// accountant matching Google's dp-accounting).
    Epsilon(EpsilonArgs),
    /// The smallest noise multiplier meeting a target ε at δ (bisection, 1e-6 relative), and the
    /// ε it actually achieves.
    Noise(NoiseArgs),
}

/// How many steps at which sampling rate: either directly or from epochs.
#[derive(Args, Clone, Debug)]
pub struct Schedule {
    /// Poisson sampling probability per step, in [0, 1] (with --steps).
    #[arg(long, value_name = "Q", allow_hyphen_values = true)]
    sample_rate: Option<f64>,
    /// Number of training steps, at least 1 (with --sample-rate).
    #[arg(long, value_name = "N")]
    steps: Option<u64>,
    /// Training epochs (with --dataset-size and --batch-size, instead of --sample-rate/--steps).
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    epochs: Option<f64>,
    /// Number of training examples.
    #[arg(long, value_name = "N")]
    dataset_size: Option<u64>,
    /// Expected batch size (q = batch size / dataset size).
    #[arg(long, value_name = "B")]
    batch_size: Option<u64>,
    /// Target δ, in (0, 1); typically well below 1 / dataset size.
    #[arg(long, value_name = "D", allow_hyphen_values = true)]
    delta: f64,
    /// `text` (default) or `json`.
    #[arg(long, default_value = "text")]
    format: String,
}

/// `tunegate dp epsilon`
#[derive(Args, Clone, Debug)]
pub struct EpsilonArgs {
    /// Noise standard deviation over the clipping norm (σ), >= 0.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    noise_multiplier: f64,
    #[command(flatten)]
    schedule: Schedule,
}

/// `tunegate dp noise`
#[derive(Args, Clone, Debug)]
pub struct NoiseArgs {
    /// Target ε, > 0.
    #[arg(long, value_name = "E", allow_hyphen_values = true)]
    epsilon: f64,
    #[command(flatten)]
    schedule: Schedule,
}

impl Schedule {
    /// (q, steps), from whichever form was given.
    fn resolve(&self) -> Result<(f64, u64)> {
        let direct = self.sample_rate.is_some() || self.steps.is_some();
        let epochs =
            self.epochs.is_some() || self.dataset_size.is_some() || self.batch_size.is_some();
        if direct && epochs {
            bail!("give either --sample-rate and --steps, or --epochs, --dataset-size and --batch-size, not both");
        }
        if epochs {
            match (self.epochs, self.dataset_size, self.batch_size) {
                (Some(e), Some(n), Some(b)) => Ok(dp::schedule_from_epochs(e, n, b)?),
                _ => bail!("--epochs, --dataset-size and --batch-size go together: give all three"),
            }
        } else {
            match (self.sample_rate, self.steps) {
                (Some(q), Some(s)) => Ok((q, s)),
                _ => bail!(
                    "give --sample-rate and --steps (or --epochs, --dataset-size and --batch-size)"
                ),
            }
        }
    }

    fn json(&self) -> Result<bool> {
        match self.format.as_str() {
            "json" => Ok(true),
            "text" => Ok(false),
            other => bail!("unknown format '{other}' for dp (expected text or json)"),
        }
    }
}

/// ε as JSON: a number, or null when infinite (JSON has no infinity).
fn eps_value(eps: f64) -> Value {
    if eps.is_finite() {
        json!(eps)
    } else {
        Value::Null
    }
}

fn common_fields(m: &mut Map<String, Value>, a: &Accounting, q: f64, steps: u64) {
    m.insert("order".into(), json!(a.order));
    m.insert("sample_rate".into(), json!(q));
    m.insert("steps".into(), json!(steps));
    if !a.epsilon.is_finite() {
        m.insert("epsilon_infinite".into(), json!(true));
    }
}

fn fmt_eps(eps: f64) -> String {
    if eps.is_finite() {
        format!("{eps:.6}")
    } else {
        "inf".into()
    }
}

/// Runs a `tunegate dp` command; returns the exit code (0: the numbers were computed).
pub fn run(cmd: &DpCmd) -> Result<u8> {
    match cmd {
        DpCmd::Epsilon(a) => epsilon(a),
        DpCmd::Noise(a) => noise(a),
    }
}

fn epsilon(a: &EpsilonArgs) -> Result<u8> {
    let json = a.schedule.json()?;
    let (q, steps) = a.schedule.resolve()?;
    let acc = dp::epsilon(a.noise_multiplier, q, steps, a.schedule.delta)?;
    let text = if json {
        let mut m = Map::new();
        m.insert("epsilon".into(), eps_value(acc.epsilon));
        m.insert("delta".into(), json!(acc.delta));
        m.insert("accountant".into(), json!("rdp"));
        m.insert("noise_multiplier".into(), json!(a.noise_multiplier));
        common_fields(&mut m, &acc, q, steps);
        serde_json::to_string_pretty(&Value::Object(m))? + "\n"
    } else {
        let mut s = format!(
            "epsilon = {} at delta = {:e} (RDP accountant, optimal order {})\n  noise multiplier {}, sample rate {}, {} steps\n",
            fmt_eps(acc.epsilon),
            acc.delta,
            acc.order,
            a.noise_multiplier,
            q,
            steps
        );
        if !acc.epsilon.is_finite() {
            s.push_str(
                "  epsilon is infinite: a noise multiplier of 0 gives no privacy guarantee\n",
            );
        }
        s
    };
    crate::output::write_out(None, &text)?;
    Ok(0)
}

fn noise(a: &NoiseArgs) -> Result<u8> {
    let json = a.schedule.json()?;
    let (q, steps) = a.schedule.resolve()?;
    let r = dp::noise_for_epsilon(a.epsilon, q, steps, a.schedule.delta)?;
    let text = if json {
        let mut m = Map::new();
        m.insert("epsilon".into(), eps_value(r.achieved.epsilon));
        m.insert("delta".into(), json!(r.achieved.delta));
        m.insert("accountant".into(), json!("rdp"));
        m.insert("noise_multiplier".into(), json!(r.noise_multiplier));
        m.insert("target_epsilon".into(), json!(a.epsilon));
        common_fields(&mut m, &r.achieved, q, steps);
        m.insert(
            "relative_tolerance".into(),
            json!(dp::NOISE_RELATIVE_TOLERANCE),
        );
        serde_json::to_string_pretty(&Value::Object(m))? + "\n"
    } else {
        format!(
            "noise multiplier = {:.6} (smallest meeting epsilon <= {} at delta = {:e}, to {:e} relative)\n  achieves epsilon = {} (RDP accountant, optimal order {}); sample rate {}, {} steps\n",
            r.noise_multiplier,
            a.epsilon,
            r.achieved.delta,
            dp::NOISE_RELATIVE_TOLERANCE,
            fmt_eps(r.achieved.epsilon),
            r.achieved.order,
            q,
            steps
        )
    };
    crate::output::write_out(None, &text)?;
    Ok(0)
}
