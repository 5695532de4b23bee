//! Both views' band hashes in one pass over the records.
//!
//! The record view shingles prompt + response tokens, the response view the response tokens
//! alone, so when a response has at least [`SHINGLE`] tokens every response window is also a
//! record window. A record's signature is then the element-wise minimum of its response
//! signature and the signature of the windows that start in the prompt (the prompt followed by
//! the response's first `SHINGLE - 1` tokens): the minimum over a union of sets is the minimum
//! of the two minima. Each response window is thus hashed and signed once instead of twice; the
//! band hashes are exactly those that [`super::cluster`] would compute for each view alone.
use super::lsh::{band_row, effective_banding, hasher_for, BandMatrix};
use super::sketch::{word_shingles, SHINGLE};
use super::{exact_units, shingle_record, shingle_tokens};
use crate::detect::Ctx;
use rayon::prelude::*;

/// Records per task of the joint pass.
const CHUNK: usize = 2048;

/// One view's clustering input: its units (see [`exact_units`]) and their band hashes.
#[derive(Debug)]
pub(crate) struct ViewSketch {
    /// Each unit's representative record, ascending.
    pub reps: Vec<u32>,
    /// Each record's unit (`u32::MAX` for records outside the view).
    pub unit_of: Vec<u32>,
    /// Band hashes per unit.
    pub bands: BandMatrix,
}

/// Both views' sketches.
#[derive(Debug)]
pub(crate) struct Sketches {
    /// Whole records: one unit per distinct normalized record.
    pub record: ViewSketch,
    /// Responses: one unit per distinct non-empty normalized response; `None` when no record
    /// has one.
    pub response: Option<ViewSketch>,
}

/// Whether record `i` has a response view (a response with at least one token).
pub(crate) fn has_response(ctx: &Ctx, i: usize) -> bool {
    let c = ctx.corpus;
    c.response.present[i] && !c.response.tokens.of(i).is_empty()
}

/// One task: a range of records and the rows of both matrices whose units it holds.
struct Job<'a> {
    rec_units: std::ops::Range<usize>,
    rec_rows: &'a mut [u32],
    rec_shingled: &'a mut [bool],
    resp_units: std::ops::Range<usize>,
    resp_rows: &'a mut [u32],
    resp_shingled: &'a mut [bool],
}

/// Computes both views' units and band hashes with `threshold`'s banding.
pub(crate) fn sketches(ctx: &Ctx, threshold: f64) -> Sketches {
    let t0 = std::time::Instant::now();
    let c = ctx.corpus;
    let n = c.len().min(ctx.ds.records.len());
    let banding = effective_banding(super::LshParams::for_threshold(threshold));
    let b = banding.bands;
    let hasher = hasher_for(banding);

    let (rec_reps, rec_unit_of) = exact_units(n, |i| Some(c.record_hash[i]));
    let any_response = (0..n).any(|i| has_response(ctx, i));
    let (resp_reps, resp_unit_of) = if any_response {
        exact_units(n, |i| has_response(ctx, i).then(|| c.response.hash[i]))
    } else {
        (Vec::new(), Vec::new())
    };
    let mut rec = BandMatrix::zeroed(rec_reps.len(), banding);
    let mut resp = BandMatrix::zeroed(resp_reps.len(), banding);

    // Cut the record range into chunks and hand each chunk the (contiguous, because units are
    // numbered in representative order) rows of the units whose representatives it holds.
    let mut jobs: Vec<Job> = Vec::with_capacity(n / CHUNK + 1);
    {
        let (mut rec_rows, mut rec_sh) = (rec.hashes.as_mut_slice(), rec.shingled.as_mut_slice());
        let (mut resp_rows, mut resp_sh) =
            (resp.hashes.as_mut_slice(), resp.shingled.as_mut_slice());
        let (mut r0, mut s0) = (0usize, 0usize);
        let mut start = 0usize;
        while start < n {
            let end = (start + CHUNK).min(n);
            let r1 = rec_reps.partition_point(|&r| (r as usize) < end);
            let s1 = resp_reps.partition_point(|&r| (r as usize) < end);
            let (rh, rest) = std::mem::take(&mut rec_rows).split_at_mut((r1 - r0) * b);
            rec_rows = rest;
            let (rs, rest) = std::mem::take(&mut rec_sh).split_at_mut(r1 - r0);
            rec_sh = rest;
            let (sh, rest) = std::mem::take(&mut resp_rows).split_at_mut((s1 - s0) * b);
            resp_rows = rest;
            let (ss, rest) = std::mem::take(&mut resp_sh).split_at_mut(s1 - s0);
            resp_sh = rest;
            jobs.push(Job {
                rec_units: r0..r1,
                rec_rows: rh,
                rec_shingled: rs,
                resp_units: s0..s1,
                resp_rows: sh,
                resp_shingled: ss,
            });
            (r0, s0) = (r1, s1);
            start = end;
        }
    }

    let perms = hasher.num_perm();
    jobs.into_par_iter().for_each_init(
        || {
            (
                Vec::<u64>::with_capacity(256),
                vec![0u64; perms],
                vec![0u64; perms],
            )
        },
        |(buf, rsig, sig), job| {
            let Job {
                rec_units,
                rec_rows,
                rec_shingled,
                resp_units,
                resp_rows,
                resp_shingled,
            } = job;
            let (mut ru, mut su) = (rec_units.start, resp_units.start);
            while ru < rec_units.end || su < resp_units.end {
                let next_rec = rec_reps.get(ru).filter(|_| ru < rec_units.end);
                let next_resp = resp_reps.get(su).filter(|_| su < resp_units.end);
                let i = next_rec
                    .copied()
                    .unwrap_or(u32::MAX)
                    .min(next_resp.copied().unwrap_or(u32::MAX)) as usize;
                let need_rec = next_rec.is_some_and(|&r| r as usize == i);
                let need_resp = next_resp.is_some_and(|&r| r as usize == i);
                let prompt = c.prompt.tokens.of(i);
                let response = c.response.tokens.of(i);
                let words = response.len() >= SHINGLE;
                // The response signature, when either view needs it.
                let mut have_rsig = false;
                if need_resp {
                    let k = su - resp_units.start;
                    buf.clear();
                    shingle_tokens(ctx, &[response], buf);
                    if !buf.is_empty() {
                        hasher.signature_into(buf, rsig);
                        band_row(rsig, banding, &mut resp_rows[k * b..(k + 1) * b]);
                        resp_shingled[k] = true;
                        have_rsig = words;
                    }
                    su += 1;
                }
                if need_rec {
                    let k = ru - rec_units.start;
                    let row = &mut rec_rows[k * b..(k + 1) * b];
                    if words {
                        if !have_rsig {
                            buf.clear();
                            word_shingles(&[response], SHINGLE, buf);
                            hasher.signature_into(buf, rsig);
                        }
                        buf.clear();
                        word_shingles(&[prompt, &response[..SHINGLE - 1]], SHINGLE, buf);
                        if buf.is_empty() {
                            band_row(rsig, banding, row);
                        } else {
                            hasher.signature_into(buf, sig);
                            for (s, r) in sig.iter_mut().zip(rsig.iter()) {
                                *s = (*s).min(*r);
                            }
                            band_row(sig, banding, row);
                        }
                        rec_shingled[k] = true;
                    } else {
                        buf.clear();
                        shingle_record(ctx, i, buf);
                        if !buf.is_empty() {
                            hasher.signature_into(buf, sig);
                            band_row(sig, banding, row);
                            rec_shingled[k] = true;
                        }
                    }
                    ru += 1;
                }
            }
        },
    );
    let elapsed = t0.elapsed();
    rec.elapsed = elapsed;
    resp.elapsed = elapsed;
    Sketches {
        record: ViewSketch {
            reps: rec_reps,
            unit_of: rec_unit_of,
            bands: rec,
        },
        response: any_response.then_some(ViewSketch {
            reps: resp_reps,
            unit_of: resp_unit_of,
            bands: resp,
        }),
    }
}
