//! Progress reporting. Libraries report through [`Progress`]; the binary decides whether a bar is
//! drawn (a terminal on stderr, no `--quiet`). Progress never goes to stdout, so JSON on stdout
//! stays clean.

/// A sink for progress of a long step.
pub trait Progress: Sync {
    /// A new step starts with `total` units (bytes or records; 0 when unknown).
    fn start(&self, step: &str, total: u64);
    /// `n` more units are done.
    fn advance(&self, n: u64);
    /// The step is over.
    fn finish(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub struct Bar {
    bar: std::sync::Mutex<Option<indicatif::ProgressBar>>,
}

impl Bar {
    /// A bar that draws to stderr when it is a terminal.
    pub fn stderr() -> Self {
        Bar {
            bar: std::sync::Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, step: &str, total: u64) {
        let pb = if total > 0 {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::new_spinner()
        };
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        ) {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_prefix(step.to_string());
        if let Ok(mut g) = self.bar.lock() {
            if let Some(old) = g.take() {
                old.finish_and_clear();
            }
            *g = Some(pb);
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(g) = self.bar.lock() {
            if let Some(pb) = g.as_ref() {
                pb.inc(n);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(pb) = g.take() {
                pb.finish_and_clear();
            }
        }
    }
}
