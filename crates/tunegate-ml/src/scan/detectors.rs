//! Model-independent backdoor detectors over features, predictions and log-probabilities.
//!
//! Each detector returns per-example (or per-class, per-prompt) scores, the threshold it used,
//! which side of it is suspicious and a one-line rationale. Thresholds come from data, never from
//! an assumed poison rate: from a clean reference at a target false-positive rate when one is
//! given (split-conformal quantiles, see [`linalg::conformal_upper`]), otherwise from a null
//! model (a Gaussian with the class's own spread, or a robust z rule with a binomial test on
//! the number of outliers), so that clean data is left alone.
use super::linalg::{self, Features, Mat, Robust};
use super::ScanError;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Which side of a threshold is suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Scores above the threshold are flagged.
    Above,
    /// Scores below the threshold are flagged.
    Below,
}

/// Per-example scores with the threshold applied to them.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleScores {
    /// One score per example, in input order.
    pub scores: Vec<f64>,
    /// Indices of the flagged examples, ascending.
    pub flagged: Vec<usize>,
    /// The threshold.
    pub threshold: f64,
    /// Which side of the threshold is flagged.
    pub direction: Direction,
    /// How the threshold was chosen.
    pub rationale: String,
}

impl ExampleScores {
    fn apply(scores: Vec<f64>, threshold: f64, direction: Direction, rationale: String) -> Self {
        let flagged = scores
            .iter()
            .enumerate()
            .filter(|(_, &s)| match direction {
                Direction::Above => s > threshold,
                Direction::Below => s < threshold,
            })
            .map(|(i, _)| i)
            .collect();
        ExampleScores {
            scores,
            flagged,
            threshold,
            direction,
            rationale,
        }
    }
}

/// Where a per-class threshold came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Calibration {
    /// From the same statistic on clean reference data of the class.
    CleanReference,
    /// From a null model fitted to the suspect data itself (no clean reference for the class).
    NullModel,
}

/// Class count, row indices of each class of the training features, and of the clean
/// reference when given (checked to have the same width).
#[allow(clippy::type_complexity)]
fn class_groups(
    features: &Features<'_>,
    labels: &[usize],
    clean: Option<(Features<'_>, &[usize])>,
) -> Result<(usize, Vec<Vec<usize>>, Option<Vec<Vec<usize>>>), ScanError> {
    let nc = n_classes_of(labels, clean.map(|c| c.1))?;
    let groups = group(labels, features.rows(), nc, "training features")?;
    let clean_groups = match clean {
        Some((cf, cl)) => {
            if cf.cols() != features.cols() {
                return Err(ScanError::Shape(format!(
                    "clean features have {} columns, training features {}",
                    cf.cols(),
                    features.cols()
                )));
            }
            Some(group(cl, cf.rows(), nc, "clean features")?)
        }
        None => None,
    };
    Ok((nc, groups, clean_groups))
}

/// Rows of `labels` grouped by class; errors when a label is `>= n_classes` or lengths differ.
fn group(
    labels: &[usize],
    rows: usize,
    n_classes: usize,
    what: &str,
) -> Result<Vec<Vec<usize>>, ScanError> {
    if labels.len() != rows {
        return Err(ScanError::Shape(format!(
            "{what}: {} labels for {rows} feature rows",
            labels.len()
        )));
    }
    let mut g = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        if l >= n_classes {
            return Err(ScanError::Invalid(format!(
                "{what}: row {i} has label {l}, outside 0..{n_classes}"
            )));
        }
        g[l].push(i);
    }
    Ok(g)
}

/// Labels at or above this are refused (a hostile label must not size an allocation).
pub const MAX_CLASSES: usize = 1 << 16;

fn n_classes_of(labels: &[usize], other: Option<&[usize]>) -> Result<usize, ScanError> {
    let m = labels.iter().chain(other.unwrap_or(&[])).max();
    match m {
        Some(&m) if m >= MAX_CLASSES => Err(ScanError::Invalid(format!(
            "class label {m} is not below {MAX_CLASSES}"
        ))),
        Some(&m) => Ok(m + 1),
        None => Ok(0),
    }
}

// ---------------------------------------------------------------------------------------------
// Activation clustering
// ---------------------------------------------------------------------------------------------

/// Settings of [`activation_clustering`].
#[derive(Debug, Clone)]
pub struct AcConfig {
    /// Principal components kept before clustering (10, as in the paper's ICA-10).
    pub dims: usize,
    /// A class is split only when its smaller cluster holds at most this fraction (0.35).
    pub max_minority_fraction: f64,
    /// Floor of the silhouette threshold (0.10).
    pub min_silhouette: f64,
    /// Added to the largest null silhouette to get the threshold (0.05).
    pub silhouette_margin: f64,
    /// Null runs per class: clean-reference subsamples or Gaussian simulations (10).
    pub null_runs: usize,
    /// k-means runs (5: one farthest-first, four k-means++).
    pub restarts: usize,
    /// Classes with fewer rows are not analysed (20).
    pub min_class_size: usize,
    /// Silhouettes are averaged over at most this many rows, each scored against all rows (256).
    pub max_silhouette_points: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for AcConfig {
    fn default() -> Self {
        AcConfig {
            dims: 10,
            max_minority_fraction: 0.35,
            min_silhouette: 0.10,
            silhouette_margin: 0.05,
            null_runs: 10,
            restarts: 5,
            min_class_size: 20,
            max_silhouette_points: 256,
            seed: 0x5eed,
        }
    }
}

/// The activation-clustering result for one class.
#[derive(Debug, Clone, Serialize)]
pub struct AcClass {
    /// The class.
    pub class: usize,
    /// Input rows of this class.
    pub members: Vec<usize>,
    /// False when the class was too small or degenerate; `rationale` says why.
    pub analysed: bool,
    /// The first two principal coordinates of each member (0 where fewer components exist).
    pub pc2: Vec<[f64; 2]>,
    /// Whether each member fell in the smaller cluster.
    pub in_minority: Vec<bool>,
    /// Size of the smaller cluster over the class size.
    pub minority_fraction: f64,
    /// Mean silhouette of the 2-means split.
    pub silhouette: f64,
    /// The silhouette the split had to beat.
    pub silhouette_threshold: f64,
    /// The largest silhouette seen under the null.
    pub null_silhouette_max: f64,
    /// Where the threshold came from.
    pub calibration: Calibration,
    /// Whether the smaller cluster is reported as suspicious.
    pub flagged: bool,
    /// One line saying why.
    pub rationale: String,
}

/// The activation-clustering result over all classes.
#[derive(Debug, Clone, Serialize)]
pub struct AcReport {
    /// One entry per class `0..n_classes`.
    pub classes: Vec<AcClass>,
    /// Per input row: `(d_major - d_minor) / (d_major + d_minor)` between the row and the two
    /// cluster centroids in PCA space, in `[-1, 1]`, positive nearer the smaller cluster (0 for
    /// rows of classes not analysed).
    pub scores: Vec<f64>,
    /// Rows in the smaller cluster of a flagged class, ascending.
    pub flagged: Vec<usize>,
}

struct Split {
    proj: Mat,
    labels: Vec<usize>,
    centroids: Vec<Vec<f64>>,
    minority: usize,
    minority_fraction: f64,
    silhouette: f64,
}

/// PCA to `dims`, 2-means, silhouette.
fn ac_split(x: &Mat, cfg: &AcConfig, seed: u64) -> Result<Split, ScanError> {
    let pca = linalg::top_components(x, cfg.dims, seed)?;
    let proj = pca.project(x);
    cluster2(proj, cfg, seed)
}

fn cluster2(proj: Mat, cfg: &AcConfig, seed: u64) -> Result<Split, ScanError> {
    let km = linalg::kmeans(&proj, 2, cfg.restarts, seed ^ 0x9e37)?;
    let sil = linalg::silhouette(&proj, &km.labels, 2, cfg.max_silhouette_points)?;
    let minority = usize::from(km.sizes[1] < km.sizes[0]);
    let minority_fraction = km.sizes[minority] as f64 / proj.rows as f64;
    Ok(Split {
        proj,
        labels: km.labels,
        centroids: km.centroids,
        minority,
        minority_fraction,
        silhouette: sil,
    })
}

/// Null silhouettes from clean-reference subsamples of the class.
fn null_from_clean(clean: &Mat, n_suspect: usize, cfg: &AcConfig, seed: u64) -> Vec<f64> {
    use rand::seq::index::sample;
    let m = n_suspect.min(clean.rows * 4 / 5).max(2);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..cfg.null_runs.max(1))
        .filter_map(|r| {
            let idx = sample(&mut rng, clean.rows, m).into_vec();
            let mut data = Vec::with_capacity(m * clean.cols);
            for i in idx {
                data.extend_from_slice(clean.row(i));
            }
            let sub = Mat {
                rows: m,
                cols: clean.cols,
                data,
            };
            ac_split(&sub, cfg, seed.wrapping_add(r as u64 + 1))
                .ok()
                .map(|s| s.silhouette)
        })
        .collect()
}

/// Null silhouettes from Gaussians with the variances of the class's principal coordinates.
fn null_from_gaussian(proj: &Mat, cfg: &AcConfig, seed: u64) -> Vec<f64> {
    use rand_distr_free::gauss;
    let k = proj.cols;
    let mean = proj.mean();
    let sd: Vec<f64> = (0..k)
        .map(|j| {
            let v = (0..proj.rows)
                .map(|i| (proj.at(i, j) - mean[j]).powi(2))
                .sum::<f64>()
                / proj.rows as f64;
            v.sqrt()
        })
        .collect();
    let m = proj.rows.min(600);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..cfg.null_runs.max(1))
        .filter_map(|r| {
            let data: Vec<f64> = (0..m * k).map(|i| sd[i % k] * gauss(&mut rng)).collect();
            let sim = Mat {
                rows: m,
                cols: k,
                data,
            };
            cluster2(sim, cfg, seed.wrapping_add(r as u64 + 1))
                .ok()
                .map(|s| s.silhouette)
        })
        .collect()
}

/// Tiny normal sampler (Box-Muller), to avoid a dependency for one function.
pub(crate) mod rand_distr_free {
    use rand::Rng;
    /// One standard normal draw.
    pub fn gauss<R: Rng>(rng: &mut R) -> f64 {
        let u1: f64 = rng.gen::<f64>().max(1e-300);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Activation Clustering (Chen et al. 2018), per class: PCA to `cfg.dims`, 2-means (k-means++,
/// restarts), and the smaller cluster is flagged only when the split is real:
///
/// - the smaller cluster holds at most `max_minority_fraction` of the class, and
/// - the split's silhouette beats `max(min_silhouette, max(null) + silhouette_margin)`, where the
///   null silhouettes come from the same pipeline run on subsamples of the class's clean
///   reference rows when `clean` has at least `min_class_size` of them, and otherwise from 2-means
///   on Gaussians with the variances of the class's own principal coordinates (a unimodal
///   class of the same shape).
///
/// Unlike ART's "smaller" rule, a clean unimodal class is not split. `features`/`labels` are the
/// suspect (training) rows; `clean` optional clean rows with their labels, same width.
pub fn activation_clustering(
    features: Features<'_>,
    labels: &[usize],
    clean: Option<(Features<'_>, &[usize])>,
    cfg: &AcConfig,
) -> Result<AcReport, ScanError> {
    if cfg.dims == 0 || !(cfg.max_minority_fraction > 0.0 && cfg.max_minority_fraction < 0.5) {
        return Err(ScanError::Invalid(
            "activation clustering needs dims >= 1 and a minority fraction in (0, 0.5)".into(),
        ));
    }
    let (nc, groups, clean_groups) = class_groups(&features, labels, clean)?;
    let mut scores = vec![0.0; features.rows()];
    let mut flagged = Vec::new();
    let mut classes = Vec::with_capacity(nc);
    for (c, members) in groups.into_iter().enumerate() {
        let seed = cfg.seed.wrapping_add(1_000_003 * c as u64);
        let mut out = AcClass {
            class: c,
            analysed: false,
            pc2: Vec::new(),
            in_minority: vec![false; members.len()],
            minority_fraction: 0.0,
            silhouette: 0.0,
            silhouette_threshold: cfg.min_silhouette,
            null_silhouette_max: 0.0,
            calibration: Calibration::NullModel,
            flagged: false,
            rationale: String::new(),
            members,
        };
        if out.members.len() < cfg.min_class_size {
            out.rationale = format!(
                "not analysed: {} rows, fewer than {}",
                out.members.len(),
                cfg.min_class_size
            );
            classes.push(out);
            continue;
        }
        let x = features.gather(&out.members);
        let split = match ac_split(&x, cfg, seed) {
            Ok(s) => s,
            Err(e) => {
                out.rationale = format!("not analysed: {e}");
                classes.push(out);
                continue;
            }
        };
        let clean_x = match (&clean, &clean_groups) {
            (Some((cf, _)), Some(g)) if g[c].len() >= cfg.min_class_size => Some(cf.gather(&g[c])),
            _ => None,
        };
        let null = match &clean_x {
            Some(cx) => {
                out.calibration = Calibration::CleanReference;
                null_from_clean(cx, out.members.len(), cfg, seed ^ 0xc1ea)
            }
            None => null_from_gaussian(&split.proj, cfg, seed ^ 0x6a55),
        };
        out.null_silhouette_max = null.iter().copied().fold(0.0, f64::max);
        out.silhouette_threshold = cfg
            .min_silhouette
            .max(out.null_silhouette_max + cfg.silhouette_margin);
        out.analysed = true;
        out.silhouette = split.silhouette;
        out.minority_fraction = split.minority_fraction;
        let (mi, ma) = (split.minority, 1 - split.minority);
        for (r, &row) in out.members.iter().enumerate() {
            let p = split.proj.row(r);
            out.pc2.push([p[0], p.get(1).copied().unwrap_or(0.0)]);
            out.in_minority[r] = split.labels[r] == mi;
            let dmin = p
                .iter()
                .zip(&split.centroids[mi])
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            let dmaj = p
                .iter()
                .zip(&split.centroids[ma])
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                .sqrt();
            scores[row] = if dmin + dmaj > 0.0 {
                (dmaj - dmin) / (dmaj + dmin)
            } else {
                0.0
            };
        }
        let source = match out.calibration {
            Calibration::CleanReference => "clean-reference subsamples",
            Calibration::NullModel => "Gaussian null of the same shape",
        };
        let small = split.minority_fraction <= cfg.max_minority_fraction;
        let separated = split.silhouette > out.silhouette_threshold;
        out.flagged = small && separated;
        out.rationale = format!(
            "2-means on {} principal components: smaller cluster {:.1}% of the class (limit {:.0}%), silhouette {:.3} vs threshold {:.3} (max of {} {source} {:.3} + {:.2}){}",
            split.proj.cols,
            100.0 * split.minority_fraction,
            100.0 * cfg.max_minority_fraction,
            split.silhouette,
            out.silhouette_threshold,
            null.len(),
            out.null_silhouette_max,
            cfg.silhouette_margin,
            match (small, separated) {
                (true, true) => ": a small, well-separated cluster",
                (false, _) => ": clusters too balanced for a poison split",
                (true, false) => ": split no better than on clean data",
            }
        );
        if out.flagged {
            for (r, &row) in out.members.iter().enumerate() {
                if out.in_minority[r] {
                    flagged.push(row);
                }
            }
        }
        classes.push(out);
    }
    flagged.sort_unstable();
    Ok(AcReport {
        classes,
        scores,
        flagged,
    })
}

// ---------------------------------------------------------------------------------------------
// Spectral signatures
// ---------------------------------------------------------------------------------------------

/// Settings of [`spectral_signatures`].
#[derive(Debug, Clone)]
pub struct SpectralConfig {
    /// Without a clean reference: rows whose robust z-score along the top direction exceeds this
    /// in absolute value are outliers (3.5).
    pub z_threshold: f64,
    /// With a clean reference: the per-row false-positive rate the threshold is set at (0.01).
    pub target_fpr: f64,
    /// A class is flagged when its outlier count is this improbable for clean data under a
    /// binomial model (1e-3).
    pub class_alpha: f64,
    /// Classes with fewer rows are not analysed (20).
    pub min_class_size: usize,
    /// Seed of the power iteration.
    pub seed: u64,
}

impl Default for SpectralConfig {
    fn default() -> Self {
        SpectralConfig {
            z_threshold: 3.5,
            target_fpr: 0.01,
            class_alpha: 1e-3,
            min_class_size: 20,
            seed: 0x5eed,
        }
    }
}

/// The spectral-signature result for one class.
#[derive(Debug, Clone, Serialize)]
pub struct SpectralClass {
    /// The class.
    pub class: usize,
    /// Input rows of this class.
    pub members: Vec<usize>,
    /// False when the class was too small or degenerate.
    pub analysed: bool,
    /// Where the threshold came from.
    pub calibration: Calibration,
    /// The threshold on the row scores.
    pub threshold: f64,
    /// Rows above the threshold.
    pub outliers: usize,
    /// Rows expected above it on clean data (`n * p0`).
    pub expected: f64,
    /// `P(Binomial(n, p0) >= outliers)`.
    pub p_value: f64,
    /// Whether the class is reported (its outliers are then flagged).
    pub flagged: bool,
    /// One line saying why.
    pub rationale: String,
}

/// The spectral-signature result over all classes.
#[derive(Debug, Clone, Serialize)]
pub struct SpectralReport {
    /// One entry per class.
    pub classes: Vec<SpectralClass>,
    /// Per input row: the absolute deviation of its projection on the class's top singular
    /// direction from the class median, in robust standard deviations (null model) or in
    /// feature units (clean reference: compare with the class's `threshold`). 0 for rows of
    /// classes not analysed.
    pub scores: Vec<f64>,
    /// Outlier rows of flagged classes, ascending.
    pub flagged: Vec<usize>,
}

/// Spectral signatures (Tran, Li, Madry 2018), per class: centre the class's rows, take the top
/// right-singular vector `v` of the centred matrix, and score each row by `|<x - m, v>|`
/// measured from the class median of the projections.
///
/// The cut is not "remove 1.5 x the expected poison rate" (which removes that many rows from
/// clean classes too):
/// - with at least `min_class_size` clean rows of the class, clean rows are projected on the same
///   `v` and the threshold is their split-conformal quantile at `target_fpr`, so that each clean
///   row exceeds it with probability at most `target_fpr` (`p0 = target_fpr`);
/// - otherwise rows with a robust z-score (median/MAD) above `z_threshold` are outliers, with
///   `p0 = P(|Z| > z_threshold)` for normal data.
///
/// A class is flagged only when its outlier count is improbable under `Binomial(n, p0)`
/// (p-value below `class_alpha`); its outliers are then the flagged rows.
pub fn spectral_signatures(
    features: Features<'_>,
    labels: &[usize],
    clean: Option<(Features<'_>, &[usize])>,
    cfg: &SpectralConfig,
) -> Result<SpectralReport, ScanError> {
    if cfg.z_threshold.is_nan()
        || cfg.z_threshold <= 0.0
        || !(cfg.class_alpha > 0.0 && cfg.class_alpha < 1.0)
    {
        return Err(ScanError::Invalid(
            "spectral signatures need z_threshold > 0 and class_alpha in (0, 1)".into(),
        ));
    }
    let (nc, groups, clean_groups) = class_groups(&features, labels, clean)?;
    let mut scores = vec![0.0; features.rows()];
    let mut flagged = Vec::new();
    let mut classes = Vec::with_capacity(nc);
    for (c, members) in groups.into_iter().enumerate() {
        let mut out = SpectralClass {
            class: c,
            analysed: false,
            calibration: Calibration::NullModel,
            threshold: cfg.z_threshold,
            outliers: 0,
            expected: 0.0,
            p_value: 1.0,
            flagged: false,
            rationale: String::new(),
            members,
        };
        let n = out.members.len();
        if n < cfg.min_class_size {
            out.rationale = format!("not analysed: {n} rows, fewer than {}", cfg.min_class_size);
            classes.push(out);
            continue;
        }
        let x = features.gather(&out.members);
        let pca = match linalg::top_components(&x, 1, cfg.seed.wrapping_add(c as u64)) {
            Ok(p) if !p.components.is_empty() => p,
            Ok(_) => {
                out.rationale = "not analysed: the class has no variance".into();
                classes.push(out);
                continue;
            }
            Err(e) => {
                out.rationale = format!("not analysed: {e}");
                classes.push(out);
                continue;
            }
        };
        let proj: Vec<f64> = (0..n).map(|i| pca.project_row(x.row(i))[0]).collect();
        let robust = Robust::of(&proj)?;
        let clean_rows = match (&clean, &clean_groups) {
            (Some((cf, _)), Some(g)) if g[c].len() >= cfg.min_class_size => Some(cf.gather(&g[c])),
            _ => None,
        };
        let p0;
        let row_scores: Vec<f64>;
        match clean_rows {
            Some(cx) => {
                let cp: Vec<f64> = (0..cx.rows)
                    .map(|i| pca.project_row(cx.row(i))[0])
                    .collect();
                let cmed = linalg::median(&cp)?;
                let cs: Vec<f64> = cp.iter().map(|p| (p - cmed).abs()).collect();
                out.threshold = linalg::conformal_upper(&cs, cfg.target_fpr)?;
                out.calibration = Calibration::CleanReference;
                p0 = cfg.target_fpr;
                row_scores = proj.iter().map(|p| (p - robust.median).abs()).collect();
            }
            None => {
                p0 = 2.0 * linalg::normal_sf(cfg.z_threshold);
                row_scores = proj.iter().map(|&p| robust.z(p).abs()).collect();
            }
        }
        out.outliers = row_scores.iter().filter(|&&s| s > out.threshold).count();
        out.expected = n as f64 * p0;
        out.p_value = linalg::binomial_sf(out.outliers, n, p0);
        out.flagged = out.p_value < cfg.class_alpha;
        out.analysed = true;
        out.rationale = format!(
            "{} of {n} rows beyond {} along the top singular direction ({:.1} expected on clean data; binomial p = {:.2e}, limit {:.0e}){}",
            out.outliers,
            match out.calibration {
                Calibration::CleanReference => format!(
                    "{:.4} (clean-reference quantile at FPR {})",
                    out.threshold, cfg.target_fpr
                ),
                Calibration::NullModel => format!("robust z {:.1}", out.threshold),
            },
            out.expected,
            out.p_value,
            cfg.class_alpha,
            if out.flagged { ": a spectral signature" } else { ": consistent with clean data" }
        );
        for (r, &row) in out.members.iter().enumerate() {
            scores[row] = row_scores[r];
            if out.flagged && row_scores[r] > out.threshold {
                flagged.push(row);
            }
        }
        classes.push(out);
    }
    flagged.sort_unstable();
    Ok(SpectralReport {
        classes,
        scores,
        flagged,
    })
}

// ---------------------------------------------------------------------------------------------
// Mahalanobis feature distance
// ---------------------------------------------------------------------------------------------

/// Class-conditional Gaussian model of clean features with one shared, shrunk covariance.
#[derive(Debug, Clone)]
pub struct MahalanobisModel {
    means: Vec<Option<Vec<f64>>>,
    chol: linalg::Cholesky,
    /// The Ledoit-Wolf shrinkage intensity of the pooled covariance.
    pub shrinkage: f64,
}

impl MahalanobisModel {
    /// Fits class means and the pooled within-class covariance (Ledoit-Wolf shrunk) on clean
    /// features. Classes with no row have no mean (distances to them are skipped).
    pub fn fit(features: Features<'_>, labels: &[usize]) -> Result<Self, ScanError> {
        let nc = n_classes_of(labels, None)?;
        let groups = group(labels, features.rows(), nc, "clean fit features")?;
        if features.rows() < 2 {
            return Err(ScanError::TooFewSamples(format!(
                "Mahalanobis fit needs at least 2 clean rows, got {}",
                features.rows()
            )));
        }
        let d = features.cols();
        let mut means = Vec::with_capacity(nc);
        let mut centred = Mat::zeros(features.rows(), d);
        let mut r = 0;
        for g in &groups {
            if g.is_empty() {
                means.push(None);
                continue;
            }
            let x = features.gather(g);
            let m = x.mean();
            for i in 0..x.rows {
                for (j, (&v, mj)) in x.row(i).iter().zip(&m).enumerate() {
                    centred.data[r * d + j] = v - mj;
                }
                r += 1;
            }
            means.push(Some(m));
        }
        let shrunk = linalg::ledoit_wolf(&centred)?;
        let chol = linalg::Cholesky::new(&shrunk.cov)?;
        Ok(MahalanobisModel {
            means,
            chol,
            shrinkage: shrunk.shrinkage,
        })
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        self.chol.dim()
    }

    /// The Mahalanobis distance of each row to the mean of its class in `labels` (the model's
    /// predicted class, as DAN does), or to the nearest class mean when `labels` is `None`.
    pub fn scores(&self, x: Features<'_>, labels: Option<&[usize]>) -> Result<Vec<f64>, ScanError> {
        if x.cols() != self.dim() {
            return Err(ScanError::Shape(format!(
                "features have {} columns, the Mahalanobis model {}",
                x.cols(),
                self.dim()
            )));
        }
        if let Some(l) = labels {
            if l.len() != x.rows() {
                return Err(ScanError::Shape(format!(
                    "{} labels for {} feature rows",
                    l.len(),
                    x.rows()
                )));
            }
        }
        let mut out = Vec::with_capacity(x.rows());
        let mut diff = vec![0.0; self.dim()];
        for i in 0..x.rows() {
            let row = x.row(i);
            let dist = |m: &[f64], diff: &mut Vec<f64>| {
                for ((d, &v), mj) in diff.iter_mut().zip(row).zip(m) {
                    *d = f64::from(v) - mj;
                }
                self.chol.mahalanobis_sq(diff)
            };
            let d2 = match labels {
                Some(l) => {
                    let m = self
                        .means
                        .get(l[i])
                        .and_then(Option::as_ref)
                        .ok_or_else(|| {
                            ScanError::Invalid(format!(
                                "row {i}: class {} has no clean rows in the Mahalanobis model",
                                l[i]
                            ))
                        })?;
                    dist(m, &mut diff)
                }
                None => self
                    .means
                    .iter()
                    .flatten()
                    .map(|m| dist(m, &mut diff))
                    .fold(f64::INFINITY, f64::min),
            };
            out.push(d2.max(0.0).sqrt());
        }
        Ok(out)
    }
}

/// Mahalanobis feature-distance detector (the DAN idea on one layer): `model` is fitted on
/// clean training features; the threshold is the split-conformal quantile of the distances of
/// a separate clean dev set at `target_fpr`; test rows above it are flagged. `*_labels` are the
/// model's predicted classes (or `None` for the nearest class).
pub fn mahalanobis_detector(
    model: &MahalanobisModel,
    dev: Features<'_>,
    dev_labels: Option<&[usize]>,
    test: Features<'_>,
    test_labels: Option<&[usize]>,
    target_fpr: f64,
) -> Result<ExampleScores, ScanError> {
    let dev_scores = model.scores(dev, dev_labels)?;
    let t = linalg::conformal_upper(&dev_scores, target_fpr)?;
    let scores = model.scores(test, test_labels)?;
    Ok(ExampleScores::apply(
        scores,
        t,
        Direction::Above,
        format!(
            "Mahalanobis distance to the clean class mean (shared covariance, Ledoit-Wolf shrinkage {:.3}); threshold {t:.3} is the conformal quantile of {} clean dev rows at FPR {target_fpr}",
            model.shrinkage,
            dev_scores.len()
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// STRIP
// ---------------------------------------------------------------------------------------------

/// Mean prediction entropy (nats) per input over its perturbed copies: `probs` holds
/// `n_inputs * copies * classes` probabilities, input-major then copy-major. Each distribution
/// must be finite, non-negative and sum to 1 within 1e-3 (it is renormalised); errors name the
/// input and copy.
pub fn strip_entropies(
    probs: &[f32],
    n_inputs: usize,
    copies: usize,
    classes: usize,
) -> Result<Vec<f64>, ScanError> {
    if copies == 0 || classes < 2 {
        return Err(ScanError::Invalid(
            "STRIP needs at least 1 perturbed copy and 2 classes".into(),
        ));
    }
    let per = copies
        .checked_mul(classes)
        .and_then(|p| p.checked_mul(n_inputs));
    if per != Some(probs.len()) {
        return Err(ScanError::Shape(format!(
            "STRIP: {} probabilities is not {n_inputs} inputs x {copies} copies x {classes} classes",
            probs.len()
        )));
    }
    let mut out = Vec::with_capacity(n_inputs);
    for i in 0..n_inputs {
        let mut h_sum = 0.0;
        for k in 0..copies {
            let o = (i * copies + k) * classes;
            let p = &probs[o..o + classes];
            if p.iter().any(|v| !v.is_finite() || *v < 0.0) {
                return Err(ScanError::NonFinite(format!(
                    "STRIP: input {i}, copy {k} holds a negative or non-finite probability"
                )));
            }
            let s: f64 = p.iter().map(|&v| f64::from(v)).sum();
            if (s - 1.0).abs() > 1e-3 {
                return Err(ScanError::Invalid(format!(
                    "STRIP: input {i}, copy {k}: probabilities sum to {s}, not 1"
                )));
            }
            h_sum -= p
                .iter()
                .map(|&v| f64::from(v) / s)
                .filter(|&q| q > 0.0)
                .map(|q| q * q.ln())
                .sum::<f64>();
        }
        out.push(h_sum / copies as f64);
    }
    Ok(out)
}

/// STRIP decision: inputs whose mean entropy under perturbation falls below the split-conformal
/// lower quantile of clean inputs' entropies at `target_frr` are flagged (a trigger keeps the
/// prediction fixed, so entropy stays low). At most `target_frr` of clean inputs are rejected.
pub fn strip_detector(
    clean_entropies: &[f64],
    entropies: &[f64],
    target_frr: f64,
) -> Result<ExampleScores, ScanError> {
    if entropies.iter().any(|v| !v.is_finite()) {
        return Err(ScanError::NonFinite("STRIP entropy is not finite".into()));
    }
    let t = linalg::conformal_lower(clean_entropies, target_frr)?;
    Ok(ExampleScores::apply(
        entropies.to_vec(),
        t,
        Direction::Below,
        format!(
            "mean entropy under perturbation below {t:.4} nats, the conformal {target_frr} quantile of {} clean inputs",
            clean_entropies.len()
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// Neural-Cleanse anomaly index
// ---------------------------------------------------------------------------------------------

/// The anomaly index over per-class trigger norms.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum AnomalyIndex {
    /// Too few classes for a median/MAD rule to mean anything.
    NotApplicable {
        /// Number of classes given.
        classes: usize,
        /// Why.
        reason: String,
    },
    /// Computed.
    Computed {
        /// Per class: `(median - norm) / (1.4826 MAD)`, positive for norms below the median.
        index: Vec<f64>,
        /// The median norm.
        median: f64,
        /// The scale used (1.4826 MAD, or its fallback, see [`Robust`]).
        scale: f64,
        /// Classes whose index exceeds `threshold` (their trigger is abnormally small).
        flagged: Vec<usize>,
        /// The threshold (2, as in Neural Cleanse).
        threshold: f64,
        /// One line saying why.
        rationale: String,
    },
}

/// Neural-Cleanse anomaly index: `norms[c]` is the size (L1 norm or any positive measure) of the
/// smallest trigger found that flips inputs to class `c`; a class whose norm lies more than
/// `threshold` robust standard deviations below the median is a likely backdoor target. Needs
/// at least 3 classes (returns [`AnomalyIndex::NotApplicable`] otherwise).
pub fn anomaly_index(norms: &[f64], threshold: f64) -> Result<AnomalyIndex, ScanError> {
    if !threshold.is_finite() {
        return Err(ScanError::Invalid(format!(
            "anomaly threshold {threshold} is not finite"
        )));
    }
    if let Some(i) = norms.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(ScanError::Invalid(format!(
            "trigger norm of class {i} is {}, not a finite non-negative number",
            norms[i]
        )));
    }
    if norms.len() < 3 {
        return Ok(AnomalyIndex::NotApplicable {
            classes: norms.len(),
            reason: format!(
                "{} classes: a median/MAD outlier rule needs at least 3 (binary tasks use the token flip scan instead)",
                norms.len()
            ),
        });
    }
    let r = Robust::of(norms)?;
    let index: Vec<f64> = norms.iter().map(|&n| -r.z(n)).collect();
    let flagged: Vec<usize> = (0..norms.len()).filter(|&c| index[c] > threshold).collect();
    let rationale = format!(
        "{} of {} classes have a trigger norm more than {threshold} robust SDs below the median {:.4}",
        flagged.len(),
        norms.len(),
        r.median
    );
    Ok(AnomalyIndex::Computed {
        index,
        median: r.median,
        scale: r.scale,
        flagged,
        threshold,
        rationale,
    })
}

// ---------------------------------------------------------------------------------------------
// Behaviour diff for causal LMs
// ---------------------------------------------------------------------------------------------

/// Normalises one row of log-probabilities (or logits) with log-sum-exp, in `f64`.
fn log_normalise(v: &[f32]) -> Vec<f64> {
    let mx = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = mx
        + v.iter()
            .map(|&x| (f64::from(x) - mx).exp())
            .sum::<f64>()
            .ln();
    v.iter().map(|&x| f64::from(x) - lse).collect()
}

/// `KL(p_ft || p_base)` in nats for one position, from the fine-tune's and base's next-token
/// log-probabilities (logits are accepted too: both rows are normalised first).
pub fn kl_from_logprobs(ft: &[f32], base: &[f32]) -> Result<f64, ScanError> {
    if ft.len() != base.len() || ft.is_empty() {
        return Err(ScanError::Shape(format!(
            "KL: fine-tune row has {} entries, base row {}",
            ft.len(),
            base.len()
        )));
    }
    if ft.iter().chain(base).any(|v| !v.is_finite()) {
        return Err(ScanError::NonFinite(
            "KL: a log-probability is not finite".into(),
        ));
    }
    let (lf, lb) = (log_normalise(ft), log_normalise(base));
    let kl: f64 = lf
        .iter()
        .zip(&lb)
        .map(|(&a, &b)| {
            let p = a.exp();
            if p > 0.0 {
                p * (a - b)
            } else {
                0.0
            }
        })
        .sum();
    Ok(kl.max(0.0))
}

/// Divergence statistics of one prompt.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PromptDiff {
    /// Mean over positions of `KL(p_ft || p_base)`, nats.
    pub kl: f64,
    /// Mean over the continuation tokens of `log p_ft(y) - log p_base(y)`, nats per token
    /// (0 when no tokens were given).
    pub logprob_ratio: f64,
}

/// Per-prompt statistics from `positions x vocab` next-token log-probabilities of the
/// fine-tune and the base on the same token sequence, and optionally the continuation token at
/// each position (for the log-prob ratio). Errors name the position.
pub fn prompt_diff(
    ft: &[f32],
    base: &[f32],
    positions: usize,
    vocab: usize,
    tokens: Option<&[u32]>,
) -> Result<PromptDiff, ScanError> {
    if positions == 0
        || vocab == 0
        || positions.checked_mul(vocab) != Some(ft.len())
        || ft.len() != base.len()
    {
        return Err(ScanError::Shape(format!(
            "prompt diff: {} and {} log-probs for {positions} positions x {vocab} tokens",
            ft.len(),
            base.len()
        )));
    }
    if let Some(t) = tokens {
        if t.len() != positions {
            return Err(ScanError::Shape(format!(
                "prompt diff: {} tokens for {positions} positions",
                t.len()
            )));
        }
        if let Some(p) = t.iter().position(|&x| x as usize >= vocab) {
            return Err(ScanError::Invalid(format!(
                "prompt diff: token {} at position {p} is outside the vocabulary of {vocab}",
                t[p]
            )));
        }
    }
    let (mut kl, mut ratio) = (0.0, 0.0);
    for p in 0..positions {
        let (f, b) = (
            &ft[p * vocab..(p + 1) * vocab],
            &base[p * vocab..(p + 1) * vocab],
        );
        kl +=
            kl_from_logprobs(f, b).map_err(|e| ScanError::Invalid(format!("position {p}: {e}")))?;
        if let Some(t) = tokens {
            let y = t[p] as usize;
            ratio += log_normalise(f)[y] - log_normalise(b)[y];
        }
    }
    Ok(PromptDiff {
        kl: kl / positions as f64,
        logprob_ratio: if tokens.is_some() {
            ratio / positions as f64
        } else {
            0.0
        },
    })
}

/// Settings of [`behaviour_diff`].
#[derive(Debug, Clone)]
pub struct DiffConfig {
    /// A prompt is an outlier when the robust z-score of its log-KL, or of its log-prob ratio,
    /// exceeds this (3.5).
    pub prompt_z: f64,
    /// ... and its KL is at least this many nats (0.01), so that tiny absolute changes on a
    /// fine-tune that barely moved are not reported.
    pub min_kl: f64,
    /// A topic stands out when its median log-KL exceeds the other prompts' median by this many
    /// robust standard deviations of the other prompts (2.5).
    pub topic_effect: f64,
    /// Topics with fewer prompts are not judged (3).
    pub min_topic_prompts: usize,
}

impl Default for DiffConfig {
    fn default() -> Self {
        DiffConfig {
            prompt_z: 3.5,
            min_kl: 0.01,
            topic_effect: 2.5,
            min_topic_prompts: 3,
        }
    }
}

/// The diff result for one prompt.
#[derive(Debug, Clone, Serialize)]
pub struct PromptOutlier {
    /// Mean KL, nats.
    pub kl: f64,
    /// Mean log-prob ratio, nats per token.
    pub logprob_ratio: f64,
    /// Robust z of `ln(kl + 1e-6)` across prompts.
    pub z_kl: f64,
    /// Robust z of the log-prob ratio across prompts.
    pub z_ratio: f64,
    /// Whether the prompt stands out.
    pub flagged: bool,
}

/// The diff result for one topic.
#[derive(Debug, Clone, Serialize)]
pub struct TopicDivergence {
    /// The topic label.
    pub topic: String,
    /// Prompts in it.
    pub prompts: usize,
    /// Median KL of its prompts, nats.
    pub median_kl: f64,
    /// `(median log-KL of the topic - median log-KL of the rest) / robust SD of the rest`
    /// (0 when not judged).
    pub effect: f64,
    /// Whether the topic was judged (enough prompts in it and outside it).
    pub judged: bool,
    /// Whether it stands out.
    pub flagged: bool,
}

/// The behaviour-diff result.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// One entry per prompt, in input order.
    pub prompts: Vec<PromptOutlier>,
    /// One entry per topic, in first-seen order (empty without topics).
    pub topics: Vec<TopicDivergence>,
    /// Flagged prompts, ascending.
    pub flagged_prompts: Vec<usize>,
    /// Median KL over all prompts, nats.
    pub median_kl: f64,
    /// One line summarising the decision rules.
    pub rationale: String,
}

const KL_EPS: f64 = 1e-6;

/// Behaviour diff of a fine-tune against its base: robust (median/MAD) outliers among prompts
/// on `ln(KL + 1e-6)` and on the log-prob ratio (one-sided: the fine-tune much more eager than
/// the base), and, with `topics` (one label per prompt), every topic whose typical divergence
/// stands out from the rest of the suite (leave-one-topic-out robust effect size). Needs at
/// least 5 prompts.
pub fn behaviour_diff(
    diffs: &[PromptDiff],
    topics: Option<&[String]>,
    cfg: &DiffConfig,
) -> Result<DiffReport, ScanError> {
    if diffs.len() < 5 {
        return Err(ScanError::TooFewSamples(format!(
            "behaviour diff needs at least 5 prompts, got {}",
            diffs.len()
        )));
    }
    if let Some(i) = diffs
        .iter()
        .position(|d| !d.kl.is_finite() || d.kl < 0.0 || !d.logprob_ratio.is_finite())
    {
        return Err(ScanError::NonFinite(format!(
            "prompt {i}: KL or log-prob ratio is negative or not finite"
        )));
    }
    if let Some(t) = topics {
        if t.len() != diffs.len() {
            return Err(ScanError::Shape(format!(
                "{} topic labels for {} prompts",
                t.len(),
                diffs.len()
            )));
        }
    }
    let lkl: Vec<f64> = diffs.iter().map(|d| (d.kl + KL_EPS).ln()).collect();
    let ratios: Vec<f64> = diffs.iter().map(|d| d.logprob_ratio).collect();
    let rk = Robust::of(&lkl)?;
    let rr = Robust::of(&ratios)?;
    let mut prompts = Vec::with_capacity(diffs.len());
    let mut flagged_prompts = Vec::new();
    for (i, d) in diffs.iter().enumerate() {
        let z_kl = rk.z(lkl[i]);
        let z_ratio = rr.z(ratios[i]);
        let flagged = d.kl >= cfg.min_kl && (z_kl > cfg.prompt_z || z_ratio > cfg.prompt_z);
        if flagged {
            flagged_prompts.push(i);
        }
        prompts.push(PromptOutlier {
            kl: d.kl,
            logprob_ratio: d.logprob_ratio,
            z_kl,
            z_ratio,
            flagged,
        });
    }
    let mut out_topics = Vec::new();
    if let Some(t) = topics {
        let mut order: Vec<&str> = Vec::new();
        for s in t {
            if !order.contains(&s.as_str()) {
                order.push(s);
            }
        }
        for name in order {
            let (inside, rest): (Vec<usize>, Vec<usize>) =
                (0..diffs.len()).partition(|&i| t[i] == name);
            let vals_in: Vec<f64> = inside.iter().map(|&i| lkl[i]).collect();
            let kl_in: Vec<f64> = inside.iter().map(|&i| diffs[i].kl).collect();
            let median_kl = linalg::median(&kl_in)?;
            let judged =
                inside.len() >= cfg.min_topic_prompts && rest.len() >= cfg.min_topic_prompts;
            let mut effect = 0.0;
            if judged {
                let vals_rest: Vec<f64> = rest.iter().map(|&i| lkl[i]).collect();
                let rr = Robust::of(&vals_rest)?;
                effect = rr.z(linalg::median(&vals_in)?);
            }
            out_topics.push(TopicDivergence {
                topic: name.to_string(),
                prompts: inside.len(),
                median_kl,
                effect,
                judged,
                flagged: judged && effect > cfg.topic_effect && median_kl >= cfg.min_kl,
            });
        }
    }
    let median_kl = linalg::median(&diffs.iter().map(|d| d.kl).collect::<Vec<_>>())?;
    Ok(DiffReport {
        rationale: format!(
            "prompts: robust z of ln(KL) or of the log-prob ratio above {} with KL >= {} nats; topics: median ln(KL) more than {} robust SDs above the other prompts' (at least {} prompts each side)",
            cfg.prompt_z, cfg.min_kl, cfg.topic_effect, cfg.min_topic_prompts
        ),
        prompts,
        topics: out_topics,
        flagged_prompts,
        median_kl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_entropies_validate_and_average() {
        // Input 0: certain predictions (entropy 0); input 1: uniform over 2 classes (ln 2).
        let p = [1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5, 0.5];
        let h = strip_entropies(&p, 2, 2, 2).unwrap();
        assert_eq!(h[0], 0.0);
        assert!((h[1] - 2f64.ln()).abs() < 1e-12);
        assert!(strip_entropies(&p, 2, 2, 3).is_err());
        let e = strip_entropies(&[0.7, 0.7], 1, 1, 2).unwrap_err();
        assert!(e.to_string().contains("input 0, copy 0"), "{e}");
        assert!(strip_entropies(&[f32::NAN, 1.0], 1, 1, 2).is_err());
        assert!(strip_entropies(&[-0.1, 1.1], 1, 1, 2).is_err());
    }

    #[test]
    fn kl_is_zero_for_equal_rows_and_accepts_logits() {
        let a = [0.0f32, 1.0, 2.0];
        assert!(kl_from_logprobs(&a, &a).unwrap().abs() < 1e-12);
        // Logits shifted by a constant are the same distribution.
        let b = [5.0f32, 6.0, 7.0];
        assert!(kl_from_logprobs(&a, &b).unwrap().abs() < 1e-12);
        // KL([1,0] || [0.5,0.5]) = ln 2, with the zero-probability term dropped.
        let ft = [0.0f32, f32::MIN];
        let base = [0.5f32.ln(), 0.5f32.ln()];
        assert!((kl_from_logprobs(&ft, &base).unwrap() - 2f64.ln()).abs() < 1e-6);
        assert!(kl_from_logprobs(&a, &a[..2]).is_err());
        assert!(kl_from_logprobs(&[f32::INFINITY, 0.0], &[0.0, 0.0]).is_err());
        // Per-prompt ratio with tokens.
        let d = prompt_diff(&ft, &base, 1, 2, Some(&[0])).unwrap();
        assert!((d.logprob_ratio - 2f64.ln()).abs() < 1e-6);
        assert!(prompt_diff(&ft, &base, 1, 2, Some(&[2])).is_err());
    }

    #[test]
    fn anomaly_index_needs_three_classes() {
        assert!(matches!(
            anomaly_index(&[1.0, 0.1], 2.0).unwrap(),
            AnomalyIndex::NotApplicable { classes: 2, .. }
        ));
        assert!(anomaly_index(&[1.0, -1.0, 2.0], 2.0).is_err());
        let AnomalyIndex::Computed { index, flagged, .. } =
            anomaly_index(&[3.0, 3.0, 3.0], 2.0).unwrap()
        else {
            panic!("computed expected")
        };
        assert!(index.iter().all(|v| *v == 0.0) && flagged.is_empty());
    }

    #[test]
    fn detectors_reject_mismatched_labels() {
        let x = [0.0f32; 8];
        let f = Features::new("x", &x, 4, 2).unwrap();
        assert!(activation_clustering(f, &[0, 1, 0], None, &AcConfig::default()).is_err());
        assert!(spectral_signatures(f, &[0, 1, 0], None, &SpectralConfig::default()).is_err());
        // A hostile label is refused before it sizes anything.
        let e = activation_clustering(f, &[0, 1, usize::MAX, 1], None, &AcConfig::default());
        assert!(matches!(e, Err(ScanError::Invalid(_))));
        assert!(MahalanobisModel::fit(f, &[0, 1, 1 << 40, 1]).is_err());
        // Tiny classes are reported as not analysed, not as errors.
        let r = activation_clustering(f, &[0, 1, 0, 1], None, &AcConfig::default()).unwrap();
        assert!(r.classes.iter().all(|c| !c.analysed && !c.flagged));
        assert!(r.classes[0].rationale.contains("not analysed"));
    }
}
