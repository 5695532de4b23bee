//! Robust statistics and small record helpers shared by the quality detectors (outliers,
//! mismatch, preference).
//!
//! Scores are Iglewicz–Hoaglin modified z-scores: `0.6745 (x − median) / MAD`. When more than
//! half of the values are equal the MAD is 0; the scale then falls back to the mean absolute
//! deviation × 1.2533 (both estimate σ for normal data), and a sample with no spread at all has
//! no score.
use crate::{Record, Role};
use rayon::prelude::*;

/// Median and scale of a sample.
///
/// Invariant: `scale > 0` and finite; `z(x) = (x − median) / scale`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Robust {
    /// The sample median.
    pub median: f64,
    /// The median absolute deviation (0 when the fallback was used).
    pub mad: f64,
    /// σ estimate: `MAD / 0.6745`, or `1.2533 × mean absolute deviation` when MAD is 0.
    pub scale: f64,
}

impl Robust {
    /// Robust location and scale of `values` (finite values only); `None` when there are fewer
    /// than `min_n` values or no spread.
    pub fn of(values: &[f64], min_n: usize) -> Option<Robust> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.len() < min_n.max(1) {
            return None;
        }
        let median = median_in_place(&mut v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
        let mad = median_in_place(&mut dev);
        let scale = if mad > 0.0 {
            mad / 0.6745
        } else {
            let mean_ad = dev.iter().sum::<f64>() / dev.len() as f64;
            1.2533 * mean_ad
        };
        (scale > 0.0 && scale.is_finite()).then_some(Robust { median, mad, scale })
    }

    /// The modified z-score of `x`.
    pub fn z(&self, x: f64) -> f64 {
        (x - self.median) / self.scale
    }

    /// The value whose modified z-score is `z`.
    pub fn at(&self, z: f64) -> f64 {
        self.median + z * self.scale
    }
}

/// The median of `v` (reorders `v`); `v` must be non-empty.
pub(crate) fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    let mid = n / 2;
    let (lo, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lo.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (below + m) / 2.0
    }
}

/// The path of the field with `role` that a finding about that role should point at: the
/// longest such field (the one a length or repetition finding is about), or `None`.
pub(crate) fn field_path(rec: &Record, role: Role) -> Option<&str> {
    rec.fields
        .iter()
        .filter(|f| f.role == role)
        .max_by_key(|f| f.text.len())
        .map(|f| &*f.path)
}

/// A location for `rec`, pointing at its `role` field when it has one.
pub(crate) fn location(ds: &crate::Dataset, rec: &Record, role: Role) -> tunegate_core::Location {
    let loc = ds.location(rec);
    match field_path(rec, role) {
        Some(p) => loc.field(p),
        None => loc,
    }
}

/// Lowercase name of a role for messages and chart titles.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Prompt => "prompt",
        Role::Response => "response",
        Role::Rejected => "rejected",
        Role::System => "system",
    }
}

/// At most `max` chars of `s`, with an ellipsis when cut.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().nth(max).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// Runs `f` on about two contiguous chunks of `0..n` per thread, in parallel, and returns the
/// results in chunk order. Detectors use it where each chunk needs vocabulary-sized scratch
/// space (allocated once per chunk, not once per record or per rayon job).
pub(crate) fn chunked<R, F>(n: usize, f: F) -> Vec<R>
where
    R: Send,
    F: Fn(std::ops::Range<usize>) -> R + Sync,
{
    let chunks = (rayon::current_num_threads() * 2).max(1);
    let step = n.div_ceil(chunks).max(1);
    (0..n)
        .step_by(step)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|start| f(start..(start + step).min(n)))
        .collect()
}

/// Element-wise sum of count vectors (the reduce step of [`chunked`] counting).
pub(crate) fn sum_counts(parts: Vec<Vec<u32>>, len: usize) -> Vec<u32> {
    let mut it = parts.into_iter();
    let mut acc = it.next().unwrap_or_else(|| vec![0; len]);
    for p in it {
        for (x, y) in acc.iter_mut().zip(p) {
            *x += y;
        }
    }
    acc
}

/// Occurrence counts over ids below `vocab`: `fill(i, buf)` appends record `i`'s ids (`i < n`)
/// to an empty `buf`; with `distinct` each record counts an id once (document frequency,
/// deduplicated with a per-chunk stamp array instead of sorting).
pub(crate) fn count_ids<F>(n: usize, vocab: usize, distinct: bool, fill: F) -> Vec<u32>
where
    F: Fn(usize, &mut Vec<u32>) + Sync,
{
    let parts = chunked(n, |range| {
        let mut c = vec![0u32; vocab];
        let mut stamp = if distinct {
            vec![0u32; vocab]
        } else {
            Vec::new()
        };
        let mut buf: Vec<u32> = Vec::new();
        for i in range {
            buf.clear();
            fill(i, &mut buf);
            if distinct {
                let mark = i as u32 + 1;
                for &id in &buf {
                    let s = &mut stamp[id as usize];
                    if *s != mark {
                        *s = mark;
                        c[id as usize] += 1;
                    }
                }
            } else {
                for &id in &buf {
                    c[id as usize] += 1;
                }
            }
        }
        c
    });
    sum_counts(parts, vocab)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad() {
        let r = Robust::of(&[1.0, 2.0, 3.0, 4.0, 100.0], 1).unwrap();
        assert_eq!(r.median, 3.0);
        assert_eq!(r.mad, 1.0);
        assert!(r.z(100.0) > 3.5);
        assert!((r.at(r.z(7.0)) - 7.0).abs() < 1e-9);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn zero_mad_falls_back_and_constant_has_no_score() {
        let r = Robust::of(&[5.0, 5.0, 5.0, 5.0, 9.0], 1).unwrap();
        assert_eq!(r.mad, 0.0);
        assert!(r.z(9.0) > 3.5);
        assert!(Robust::of(&[2.0; 10], 1).is_none());
        assert!(Robust::of(&[], 1).is_none());
    }

    #[test]
    fn counts_and_document_frequency() {
        let recs: [&[u32]; 3] = [&[0, 1, 1], &[1, 2], &[2, 2, 2]];
        let all = count_ids(3, 4, false, |i, b| b.extend_from_slice(recs[i]));
        assert_eq!(all, vec![1, 3, 4, 0]);
        let df = count_ids(3, 4, true, |i, b| b.extend_from_slice(recs[i]));
        assert_eq!(df, vec![1, 2, 2, 0]);
        assert_eq!(chunked(0, |r| r.len()), Vec::<usize>::new());
        assert_eq!(chunked(10, |r| r.len()).iter().sum::<usize>(), 10);
    }

    #[test]
    fn excerpt_cuts_on_chars() {
        assert_eq!(excerpt("héllo", 10), "héllo");
        assert_eq!(excerpt("héllo world", 5), "héll…");
    }
}
