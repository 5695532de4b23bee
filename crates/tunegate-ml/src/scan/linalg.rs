//! Small, dependency-free linear algebra and robust statistics for the scans.
//!
//! Everything reads `f32` feature rows (what the models produce) and accumulates in `f64`.
//! Matrices are row-major. Functions return [`ScanError`] on bad shapes, non-finite input or
//! degenerate data (identical points, too few samples); none of them panics or returns NaN.
use super::ScanError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The MAD-to-standard-deviation consistency constant for normal data.
pub const MAD_TO_SD: f64 = 1.4826;

/// A borrowed row-major matrix of `f32` features: `rows` examples of `cols` dimensions.
#[derive(Debug, Clone, Copy)]
pub struct Features<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> Features<'a> {
    /// Wraps `data` (`rows * cols` values). Errors on a length mismatch, zero columns or a
    /// non-finite value (named by row and column); `what` names the matrix in messages.
    pub fn new(what: &str, data: &'a [f32], rows: usize, cols: usize) -> Result<Self, ScanError> {
        if cols == 0 {
            return Err(ScanError::Shape(format!(
                "{what}: features have zero columns"
            )));
        }
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(ScanError::Shape(format!(
                "{what}: {} values is not {rows} rows x {cols} columns",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ScanError::NonFinite(format!(
                "{what}: row {}, column {} is {}",
                i / cols,
                i % cols,
                data[i]
            )));
        }
        Ok(Features { data, rows, cols })
    }
    /// Number of examples.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Number of dimensions.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// The selected rows, copied into `f64`.
    pub fn gather(&self, idx: &[usize]) -> Mat {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend(self.row(i).iter().map(|&v| f64::from(v)));
        }
        Mat {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }
    /// All rows, copied into `f64`.
    pub fn to_mat(&self) -> Mat {
        Mat {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&v| f64::from(v)).collect(),
        }
    }
}

/// An owned row-major `f64` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Mat {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row-major.
    pub data: Vec<f64>,
}

impl Mat {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }
    /// Wraps row-major data; errors on a length mismatch or a non-finite value.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self, ScanError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(ScanError::Shape(format!(
                "{} values is not {rows} x {cols}",
                data.len()
            )));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(ScanError::NonFinite(
                "matrix holds a non-finite value".into(),
            ));
        }
        Ok(Mat { rows, cols, data })
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.cols + j]
    }
    /// Column means.
    pub fn mean(&self) -> Vec<f64> {
        let mut m = vec![0.0; self.cols];
        for i in 0..self.rows {
            for (a, &v) in m.iter_mut().zip(self.row(i)) {
                *a += v;
            }
        }
        let n = self.rows.max(1) as f64;
        m.iter_mut().for_each(|a| *a /= n);
        m
    }
    /// Subtracts `mean` from every row in place.
    pub fn center(&mut self, mean: &[f64]) {
        let c = self.cols;
        for row in self.data.chunks_exact_mut(c) {
            for (v, m) in row.iter_mut().zip(mean) {
                *v -= m;
            }
        }
    }
}

#[allow(clippy::needless_range_loop)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let mut s = 0.0;
    for i in 0..n {
        s += a[i] * b[i];
    }
    s
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// A covariance estimate shrunk towards a scaled identity.
#[derive(Debug, Clone)]
pub struct ShrunkCovariance {
    /// The shrunk `d x d` covariance.
    pub cov: Mat,
    /// The shrinkage intensity in `[0, 1]` (0 = sample covariance, 1 = scaled identity).
    pub shrinkage: f64,
}

/// Ledoit-Wolf shrinkage of the covariance of already-centred rows `x` (divides by `n`).
///
/// The target is `mu * I` with `mu = trace(S) / d`; the intensity is the Ledoit-Wolf (2004)
/// estimate `min(beta^2, delta^2) / delta^2`, with `beta^2` computed in one pass from
/// `sum_k |x_k|^4 - n |S|_F^2`. Needs at least 2 rows and a non-zero total variance.
pub fn ledoit_wolf(x: &Mat) -> Result<ShrunkCovariance, ScanError> {
    let (n, d) = (x.rows, x.cols);
    if n < 2 {
        return Err(ScanError::TooFewSamples(format!(
            "covariance needs at least 2 rows, got {n}"
        )));
    }
    let mut s = Mat::zeros(d, d);
    let mut sum_norm4 = 0.0;
    for i in 0..n {
        let r = x.row(i);
        let nn = dot(r, r);
        sum_norm4 += nn * nn;
        for a in 0..d {
            let ra = r[a];
            if ra == 0.0 {
                continue;
            }
            let srow = &mut s.data[a * d..(a + 1) * d];
            for (b, sv) in srow.iter_mut().enumerate().skip(a) {
                *sv += ra * r[b];
            }
        }
    }
    let nf = n as f64;
    for a in 0..d {
        for b in a..d {
            let v = s.data[a * d + b] / nf;
            s.data[a * d + b] = v;
            s.data[b * d + a] = v;
        }
    }
    let mu = (0..d).map(|a| s.at(a, a)).sum::<f64>() / d as f64;
    if mu <= 0.0 || !mu.is_finite() {
        return Err(ScanError::Degenerate(
            "all rows are identical (zero variance)".into(),
        ));
    }
    let fro2: f64 = s.data.iter().map(|v| v * v).sum();
    // delta^2 = |S - mu I|_F^2 / d
    let delta2 = ((fro2 - 2.0 * mu * mu * d as f64 + mu * mu * d as f64) / d as f64).max(0.0);
    let beta2 = ((sum_norm4 - nf * fro2) / (nf * nf) / d as f64).max(0.0);
    let shrinkage = if delta2 <= 0.0 {
        1.0
    } else {
        (beta2.min(delta2) / delta2).clamp(0.0, 1.0)
    };
    for a in 0..d {
        for b in 0..d {
            let v = &mut s.data[a * d + b];
            *v *= 1.0 - shrinkage;
            if a == b {
                *v += shrinkage * mu;
            }
        }
    }
    Ok(ShrunkCovariance { cov: s, shrinkage })
}

/// The lower Cholesky factor `L` of a symmetric positive-definite matrix (`A = L L^T`).
#[derive(Debug, Clone)]
pub struct Cholesky {
    l: Mat,
}

impl Cholesky {
    /// Factors `a`; errors when `a` is not square or not positive definite.
    pub fn new(a: &Mat) -> Result<Self, ScanError> {
        if a.rows != a.cols {
            return Err(ScanError::Shape(format!(
                "Cholesky of a {} x {} matrix",
                a.rows, a.cols
            )));
        }
        let d = a.rows;
        let mut l = Mat::zeros(d, d);
        for i in 0..d {
            for j in 0..=i {
                let mut s = a.at(i, j);
                for k in 0..j {
                    s -= l.at(i, k) * l.at(j, k);
                }
                if i == j {
                    if s <= 0.0 || !s.is_finite() {
                        return Err(ScanError::Degenerate(format!(
                            "matrix is not positive definite (pivot {i} is {s:e})"
                        )));
                    }
                    l.data[i * d + i] = s.sqrt();
                } else {
                    l.data[i * d + j] = s / l.at(j, j);
                }
            }
        }
        Ok(Cholesky { l })
    }
    /// Dimension.
    pub fn dim(&self) -> usize {
        self.l.rows
    }
    /// `L^{-1} b` by forward substitution.
    pub fn forward(&self, b: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut y = vec![0.0; d];
        for i in 0..d {
            let li = self.l.row(i);
            let s = b[i] - dot(&li[..i], &y[..i]);
            y[i] = s / li[i];
        }
        y
    }
    /// Solves `A x = b`.
    pub fn solve(&self, b: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut x = self.forward(b);
        for i in (0..d).rev() {
            let mut s = x[i];
            for (k, xk) in x.iter().enumerate().skip(i + 1) {
                s -= self.l.at(k, i) * xk;
            }
            x[i] = s / self.l.at(i, i);
        }
        x
    }
    /// The squared Mahalanobis norm `b^T A^{-1} b = |L^{-1} b|^2`.
    pub fn mahalanobis_sq(&self, b: &[f64]) -> f64 {
        let y = self.forward(b);
        dot(&y, &y)
    }
}

/// Principal components of a set of rows.
#[derive(Debug, Clone)]
pub struct Pca {
    /// The column means that were subtracted.
    pub mean: Vec<f64>,
    /// Unit-norm components, strongest first (each of length `d`).
    pub components: Vec<Vec<f64>>,
    /// Variance along each component (eigenvalues of the covariance, divided by `n`).
    pub variances: Vec<f64>,
}

impl Pca {
    /// Projects row `x` (uncentred) onto the components.
    pub fn project_row(&self, x: &[f64]) -> Vec<f64> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(x)
                    .zip(&self.mean)
                    .map(|((c, x), m)| c * (x - m))
                    .sum()
            })
            .collect()
    }
    /// Projects every row of `x` (uncentred): an `n x k` matrix.
    pub fn project(&self, x: &Mat) -> Mat {
        let k = self.components.len();
        let mut out = Mat::zeros(x.rows, k);
        for i in 0..x.rows {
            let p = self.project_row(x.row(i));
            out.data[i * k..(i + 1) * k].copy_from_slice(&p);
        }
        out
    }
}

/// The top `k` principal components of `x` by power iteration with deflation (each vector is
/// kept orthogonal to the ones found before). When `n > d` and `d <= 1024` the `d x d`
/// covariance is formed once (one pass, `O(n d^2)`) and iterated on; otherwise the covariance is
/// applied implicitly (two passes over the centred rows per iteration). At most
/// `min(k, d, n - 1)` components are returned, fewer when the remaining variance is zero.
/// Deterministic for a given `seed`.
pub fn top_components(x: &Mat, k: usize, seed: u64) -> Result<Pca, ScanError> {
    const MAX_ITERS: usize = 300;
    const TOL: f64 = 1e-12;
    let (n, d) = (x.rows, x.cols);
    if n < 2 {
        return Err(ScanError::TooFewSamples(format!(
            "principal components need at least 2 rows, got {n}"
        )));
    }
    let mean = x.mean();
    let mut xc = x.clone();
    xc.center(&mean);
    let total: f64 = xc.data.iter().map(|v| v * v).sum::<f64>() / n as f64;
    if total <= 0.0 {
        return Err(ScanError::Degenerate(
            "all rows are identical (zero variance)".into(),
        ));
    }
    let cov = if n > d && d <= 1024 {
        let mut c = Mat::zeros(d, d);
        for i in 0..n {
            let r = xc.row(i);
            for a in 0..d {
                let ra = r[a];
                if ra != 0.0 {
                    let crow = &mut c.data[a * d..(a + 1) * d];
                    for (cv, &rb) in crow[a..].iter_mut().zip(&r[a..]) {
                        *cv += ra * rb;
                    }
                }
            }
        }
        for a in 0..d {
            for b in a..d {
                let v = c.data[a * d + b] / n as f64;
                c.data[a * d + b] = v;
                c.data[b * d + a] = v;
            }
        }
        Some(c)
    } else {
        None
    };
    // For small d, iterate with (C / tr C)^4 instead of C: same eigenvectors, the eigenvalue
    // ratios raised to the 4th power, so each iteration counts for four.
    let pow4 = match &cov {
        Some(c) if d <= 256 => {
            let tr: f64 = (0..d).map(|a| c.at(a, a)).sum();
            let mut s = c.clone();
            s.data.iter_mut().for_each(|v| *v /= tr);
            let s2 = matmul_sym(&s);
            Some(matmul_sym(&s2))
        }
        _ => None,
    };
    let mut u = vec![0.0; n];
    // w = C v
    let mut apply = |v: &[f64], fast: bool| -> Vec<f64> {
        match (&cov, &pow4) {
            (_, Some(p)) if fast => (0..d).map(|a| dot(p.row(a), v)).collect(),
            (Some(c), _) => (0..d).map(|a| dot(c.row(a), v)).collect(),
            (None, _) => {
                for (i, ui) in u.iter_mut().enumerate() {
                    *ui = dot(xc.row(i), v);
                }
                let mut w = vec![0.0; d];
                for (i, &ui) in u.iter().enumerate() {
                    if ui != 0.0 {
                        for (wj, &xj) in w.iter_mut().zip(xc.row(i)) {
                            *wj += ui * xj;
                        }
                    }
                }
                w.iter_mut().for_each(|a| *a /= n as f64);
                w
            }
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut comps: Vec<Vec<f64>> = Vec::new();
    let mut vars = Vec::new();
    for _ in 0..k.min(d).min(n - 1) {
        let mut v: Vec<f64> = (0..d).map(|_| rng.gen::<f64>() - 0.5).collect();
        orthonormalise(&mut v, &comps);
        if norm(&v) == 0.0 {
            break;
        }
        for _ in 0..MAX_ITERS {
            let mut w = apply(&v, true);
            orthonormalise(&mut w, &comps);
            if norm(&w) == 0.0 {
                break;
            }
            let change = 1.0 - dot(&w, &v).abs();
            v = w;
            if change < TOL {
                break;
            }
        }
        let cv = apply(&v, false);
        let lam = dot(&v, &cv);
        if norm(&v) == 0.0 || lam <= total * 1e-12 {
            break;
        }
        comps.push(v);
        vars.push(lam);
    }
    Ok(Pca {
        mean,
        components: comps,
        variances: vars,
    })
}

/// `A A` for a symmetric `A`.
fn matmul_sym(a: &Mat) -> Mat {
    let d = a.rows;
    let mut out = Mat::zeros(d, d);
    for i in 0..d {
        for j in i..d {
            // A symmetric: (A A)_ij = row_i . row_j
            let v = dot(a.row(i), a.row(j));
            out.data[i * d + j] = v;
            out.data[j * d + i] = v;
        }
    }
    out
}

/// Gram-Schmidt `v` against the orthonormal `basis` (twice, for stability), then normalises it;
/// leaves a zero vector when `v` lies in the span (up to rounding).
fn orthonormalise(v: &mut [f64], basis: &[Vec<f64>]) {
    let before = norm(v);
    for _ in 0..2 {
        for b in basis {
            let p = dot(v, b);
            v.iter_mut().zip(b).for_each(|(a, b)| *a -= p * b);
        }
    }
    let n = norm(v);
    // A residual at rounding level of the input has lost its direction: treat it as zero.
    if n > 1e-300 && n > 1e-10 * before {
        v.iter_mut().for_each(|a| *a /= n);
    } else {
        v.iter_mut().for_each(|a| *a = 0.0);
    }
}

/// The result of k-means.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// Cluster of each row.
    pub labels: Vec<usize>,
    /// `k` centroids of `d` values.
    pub centroids: Vec<Vec<f64>>,
    /// Rows per cluster.
    pub sizes: Vec<usize>,
    /// Sum of squared distances to the assigned centroid.
    pub inertia: f64,
}

// Plain index loops: these two are the hot spots of k-means and silhouettes, and stay fast in
// unoptimised (test) builds.
#[allow(clippy::needless_range_loop)]
fn sqdist(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let mut s = 0.0;
    for i in 0..n {
        let t = a[i] - b[i];
        s += t * t;
    }
    s
}

/// k-means with `restarts` runs (at least 1): the first seeded farthest-first from the row
/// nearest the mean, the others by k-means++; the lowest inertia wins. Lloyd iterations stop
/// when no row changes cluster or the inertia improves by less than 1e-9 relative (at most
/// 100). Deterministic for a given `seed`.
/// Errors when there are fewer rows than clusters or fewer than `k` distinct rows.
pub fn kmeans(x: &Mat, k: usize, restarts: usize, seed: u64) -> Result<KMeans, ScanError> {
    let (n, d) = (x.rows, x.cols);
    if k == 0 {
        return Err(ScanError::Invalid("k-means needs k >= 1".into()));
    }
    if n < k {
        return Err(ScanError::TooFewSamples(format!(
            "k-means with k = {k} needs at least {k} rows, got {n}"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<KMeans> = None;
    for run in 0..restarts.max(1) {
        // Run 0: deterministic farthest-first seeding from the row nearest the mean, which
        // finds a small far cluster that random seeding often misses; then k-means++.
        let first = if run == 0 {
            let m = x.mean();
            (0..n)
                .min_by(|&a, &b| sqdist(x.row(a), &m).total_cmp(&sqdist(x.row(b), &m)))
                .unwrap_or(0)
        } else {
            rng.gen_range(0..n)
        };
        let mut cents: Vec<Vec<f64>> = vec![x.row(first).to_vec()];
        let mut dmin: Vec<f64> = (0..n).map(|i| sqdist(x.row(i), &cents[0])).collect();
        while cents.len() < k {
            let total: f64 = dmin.iter().sum();
            if total <= 0.0 {
                return Err(ScanError::Degenerate(format!(
                    "k-means with k = {k}: fewer than {k} distinct rows"
                )));
            }
            let mut pick = n - 1;
            if run > 0 {
                let mut t = rng.gen::<f64>() * total;
                for (i, &w) in dmin.iter().enumerate() {
                    if t < w {
                        pick = i;
                        break;
                    }
                    t -= w;
                }
            }
            if run == 0 || dmin[pick] <= 0.0 {
                // Rounding landed on a zero-weight row: take the farthest one instead.
                pick = (0..n)
                    .max_by(|&a, &b| dmin[a].total_cmp(&dmin[b]))
                    .unwrap_or(0);
            }
            let c = x.row(pick).to_vec();
            for (i, dm) in dmin.iter_mut().enumerate() {
                *dm = dm.min(sqdist(x.row(i), &c));
            }
            cents.push(c);
        }
        // Lloyd iterations.
        let mut labels = vec![0usize; n];
        let mut inertia = f64::INFINITY;
        for it in 0..100 {
            let mut changed = false;
            let mut new_inertia = 0.0;
            for (i, lab) in labels.iter_mut().enumerate() {
                let r = x.row(i);
                let (mut bj, mut bd) = (0, f64::INFINITY);
                for (j, c) in cents.iter().enumerate() {
                    let dd = sqdist(r, c);
                    if dd < bd {
                        bd = dd;
                        bj = j;
                    }
                }
                changed |= *lab != bj;
                *lab = bj;
                new_inertia += bd;
            }
            let stalled = it > 0 && inertia - new_inertia <= 1e-9 * inertia;
            inertia = new_inertia;
            if stalled {
                break;
            }
            let mut sums = vec![vec![0.0; d]; k];
            let mut counts = vec![0usize; k];
            for (i, &l) in labels.iter().enumerate() {
                counts[l] += 1;
                sums[l].iter_mut().zip(x.row(i)).for_each(|(s, v)| *s += v);
            }
            for j in 0..k {
                if counts[j] == 0 {
                    // An emptied cluster takes the row farthest from its centroid.
                    let far = (0..n)
                        .max_by(|&a, &b| {
                            sqdist(x.row(a), &cents[labels[a]])
                                .total_cmp(&sqdist(x.row(b), &cents[labels[b]]))
                        })
                        .unwrap_or(0);
                    cents[j] = x.row(far).to_vec();
                    changed = true;
                } else {
                    cents[j] = sums[j].iter().map(|s| s / counts[j] as f64).collect();
                }
            }
            if !changed && it > 0 {
                break;
            }
        }
        // Centroids and sizes of the final assignment (an early stop leaves the centroids one
        // update behind).
        let mut sizes = vec![0usize; k];
        let mut sums = vec![vec![0.0; d]; k];
        for (i, &l) in labels.iter().enumerate() {
            sizes[l] += 1;
            sums[l].iter_mut().zip(x.row(i)).for_each(|(s, v)| *s += v);
        }
        for j in 0..k {
            if sizes[j] > 0 {
                cents[j] = sums[j].iter().map(|s| s / sizes[j] as f64).collect();
            }
        }
        let run = KMeans {
            labels,
            centroids: cents,
            sizes,
            inertia,
        };
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    best.ok_or_else(|| ScanError::Invalid("k-means ran no restart".into()))
}

/// The mean silhouette coefficient of a clustering. With more than `max_points` rows it is
/// averaged over an evenly spaced deterministic subset of `max_points` rows, each still scored
/// against all rows (an unbiased estimate at `O(max_points * n * d)` cost). A row alone in its
/// cluster scores 0. Errors when fewer than 2 clusters are non-empty or there are fewer than 2
/// rows.
pub fn silhouette(
    x: &Mat,
    labels: &[usize],
    k: usize,
    max_points: usize,
) -> Result<f64, ScanError> {
    let n = x.rows;
    if labels.len() != n {
        return Err(ScanError::Shape(format!(
            "silhouette: {} labels for {n} rows",
            labels.len()
        )));
    }
    if n < 2 {
        return Err(ScanError::TooFewSamples(format!(
            "silhouette needs at least 2 rows, got {n}"
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
        return Err(ScanError::Invalid(format!(
            "silhouette: label {bad} outside 0..{k}"
        )));
    }
    let mut sizes = vec![0usize; k];
    for &l in labels {
        sizes[l] += 1;
    }
    if sizes.iter().filter(|&&s| s > 0).count() < 2 {
        return Err(ScanError::Degenerate(
            "silhouette needs at least 2 non-empty clusters".into(),
        ));
    }
    let m = n.min(max_points.max(1));
    let mut total = 0.0;
    let mut sums = vec![0.0; k];
    for t in 0..m {
        let i = t * n / m;
        sums.iter_mut().for_each(|s| *s = 0.0);
        for j in 0..n {
            if i != j {
                sums[labels[j]] += sqdist(x.row(i), x.row(j)).sqrt();
            }
        }
        let own = labels[i];
        if sizes[own] <= 1 {
            continue;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let den = a.max(b);
        if den > 0.0 {
            total += (b - a) / den;
        }
    }
    Ok(total / m as f64)
}

/// The median of `v` (NaN-free input assumed; empty gives an error).
pub fn median(v: &[f64]) -> Result<f64, ScanError> {
    if v.is_empty() {
        return Err(ScanError::TooFewSamples("median of no values".into()));
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len();
    Ok(if m % 2 == 1 {
        s[m / 2]
    } else {
        0.5 * (s[m / 2 - 1] + s[m / 2])
    })
}

/// A robust location and scale: the median and a normal-consistent spread.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Robust {
    /// The median.
    pub median: f64,
    /// `1.4826 * MAD`; when the MAD is zero (more than half the values tie), the mean absolute
    /// deviation times `sqrt(pi / 2)`; when that is zero too, a tiny positive floor, so that
    /// z-scores stay finite (0 for values equal to the median, very large otherwise).
    pub scale: f64,
    /// The plain MAD (unscaled), for reports.
    pub mad: f64,
}

impl Robust {
    /// Median and scale of `v`; errors on an empty or non-finite input.
    pub fn of(v: &[f64]) -> Result<Self, ScanError> {
        if v.iter().any(|x| !x.is_finite()) {
            return Err(ScanError::NonFinite(
                "robust statistics of a non-finite value".into(),
            ));
        }
        let med = median(v)?;
        let dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        let mad = median(&dev)?;
        let mut scale = MAD_TO_SD * mad;
        if scale <= 0.0 {
            scale =
                dev.iter().sum::<f64>() / dev.len() as f64 * (std::f64::consts::PI / 2.0).sqrt();
        }
        let floor = 1e-12 * med.abs().max(1.0);
        Ok(Robust {
            median: med,
            scale: scale.max(floor),
            mad,
        })
    }
    /// The robust z-score of `x`.
    pub fn z(&self, x: f64) -> f64 {
        (x - self.median) / self.scale
    }
}

/// Robust z-scores `(x - median) / (1.4826 MAD)` of every value (see [`Robust`] for ties).
pub fn robust_z(v: &[f64]) -> Result<Vec<f64>, ScanError> {
    let r = Robust::of(v)?;
    Ok(v.iter().map(|&x| r.z(x)).collect())
}

/// The upper threshold at a target false-positive rate from clean calibration scores, by the
/// split-conformal rule: the `ceil((n + 1)(1 - fpr))`-th smallest clean score. A new clean score
/// exchangeable with the calibration scores exceeds it with probability at most `fpr`. Errors
/// when `fpr` is outside `(0, 1)` or there are too few scores (`n < 1/fpr - 1`) to support it.
pub fn conformal_upper(clean: &[f64], fpr: f64) -> Result<f64, ScanError> {
    if !(fpr > 0.0 && fpr < 1.0) {
        return Err(ScanError::Invalid(format!(
            "target rate {fpr} is not in (0, 1)"
        )));
    }
    if clean.iter().any(|x| !x.is_finite()) {
        return Err(ScanError::NonFinite(
            "calibration score is not finite".into(),
        ));
    }
    let n = clean.len();
    let rank = ((n as f64 + 1.0) * (1.0 - fpr)).ceil() as usize;
    if rank > n || n == 0 {
        return Err(ScanError::TooFewSamples(format!(
            "a target rate of {fpr} needs at least {} clean calibration examples, got {n}",
            ((1.0 / fpr) - 1.0).ceil() as usize
        )));
    }
    let mut s = clean.to_vec();
    s.sort_by(f64::total_cmp);
    Ok(s[rank.max(1) - 1])
}

/// The lower threshold at a target rate: the mirror of [`conformal_upper`] (a clean score falls
/// strictly below it with probability at most `rate`).
pub fn conformal_lower(clean: &[f64], rate: f64) -> Result<f64, ScanError> {
    let neg: Vec<f64> = clean.iter().map(|x| -x).collect();
    conformal_upper(&neg, rate).map(|t| -t)
}

/// The standard normal upper tail `P(Z > z)`.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, summed in log space (exact up to rounding).
pub fn binomial_sf(k: usize, n: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let ln_choose = |j: usize| {
        libm::lgamma(n as f64 + 1.0)
            - libm::lgamma(j as f64 + 1.0)
            - libm::lgamma((n - j) as f64 + 1.0)
    };
    let terms: Vec<f64> = (k..=n)
        .map(|j| ln_choose(j) + j as f64 * lp + (n - j) as f64 * lq)
        .collect();
    let mx = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mx.exp() * terms.iter().map(|t| (t - mx).exp()).sum::<f64>()).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauss(rng: &mut ChaCha8Rng) -> f64 {
        // Box-Muller.
        let u1: f64 = rng.gen::<f64>().max(1e-300);
        let u2: f64 = rng.gen();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    #[test]
    fn features_reject_bad_shape_and_nan() {
        assert!(Features::new("x", &[1.0, 2.0, 3.0], 2, 2).is_err());
        assert!(Features::new("x", &[], 0, 0).is_err());
        let e = Features::new("x", &[1.0, f32::NAN], 1, 2).unwrap_err();
        assert!(e.to_string().contains("row 0, column 1"), "{e}");
        let f = Features::new("x", &[1.0, 2.0, 3.0, 4.0], 2, 2).unwrap();
        assert_eq!(f.row(1), &[3.0, 4.0]);
    }

    #[test]
    fn cholesky_solves_and_refuses_indefinite() {
        let a = Mat::from_vec(3, 3, vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0]).unwrap();
        let c = Cholesky::new(&a).unwrap();
        let b = [1.0, -2.0, 0.5];
        let x = c.solve(&b);
        for (i, bi) in b.iter().enumerate() {
            let ax: f64 = (0..3).map(|j| a.at(i, j) * x[j]).sum();
            assert!((ax - bi).abs() < 1e-12);
        }
        assert!((c.mahalanobis_sq(&b) - dot(&b, &x)).abs() < 1e-12);
        let bad = Mat::from_vec(2, 2, vec![1.0, 2.0, 2.0, 1.0]).unwrap();
        assert!(matches!(Cholesky::new(&bad), Err(ScanError::Degenerate(_))));
    }

    #[test]
    fn ledoit_wolf_shrinks_more_when_samples_are_few() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let d = 20;
        let mk = |n: usize, rng: &mut ChaCha8Rng| {
            let data = (0..n * d)
                .map(|i| (1.0 + (i % d) as f64 / 5.0) * gauss(rng))
                .collect();
            let mut m = Mat::from_vec(n, d, data).unwrap();
            let mu = m.mean();
            m.center(&mu);
            m
        };
        let few = ledoit_wolf(&mk(15, &mut rng)).unwrap();
        let many = ledoit_wolf(&mk(5000, &mut rng)).unwrap();
        assert!(
            few.shrinkage > many.shrinkage,
            "{} vs {}",
            few.shrinkage,
            many.shrinkage
        );
        assert!(few.shrinkage > 0.3 && few.shrinkage <= 1.0);
        assert!(many.shrinkage < 0.05, "{}", many.shrinkage);
        // The many-sample estimate is close to the true diagonal covariance.
        for a in 0..d {
            let truth = (1.0 + a as f64 / 5.0).powi(2);
            assert!((many.cov.at(a, a) / truth - 1.0).abs() < 0.1);
        }
        // Fewer rows than dimensions still gives a positive-definite matrix.
        assert!(Cholesky::new(&few.cov).is_ok());
        let same = Mat::from_vec(3, 2, vec![1.0; 6]).unwrap();
        let mut c = same.clone();
        c.center(&same.mean());
        assert!(matches!(ledoit_wolf(&c), Err(ScanError::Degenerate(_))));
    }

    #[test]
    fn pca_finds_components_in_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (n, d) = (2000, 6);
        let sd = [5.0, 3.0, 1.0, 0.5, 0.5, 0.5];
        let data: Vec<f64> = (0..n * d).map(|i| sd[i % d] * gauss(&mut rng)).collect();
        let x = Mat::from_vec(n, d, data).unwrap();
        let p = top_components(&x, 3, 7).unwrap();
        assert_eq!(p.components.len(), 3);
        for (j, c) in p.components.iter().enumerate() {
            assert!(c[j].abs() > 0.99, "component {j}: {c:?}");
            assert!((p.variances[j] / (sd[j] * sd[j]) - 1.0).abs() < 0.15);
        }
        let proj = p.project(&x);
        assert_eq!((proj.rows, proj.cols), (n, 3));
        // Rank-1 data: one component, then the remaining variance is zero.
        let r1 = Mat::from_vec(4, 2, vec![1.0, 2.0, 2.0, 4.0, 3.0, 6.0, 4.0, 8.0]).unwrap();
        let p = top_components(&r1, 2, 0).unwrap();
        assert_eq!(p.components.len(), 1, "{:?}", p.variances);
        let same = Mat::from_vec(3, 2, vec![1.0; 6]).unwrap();
        assert!(top_components(&same, 2, 0).is_err());
        assert!(top_components(&Mat::zeros(1, 2), 1, 0).is_err());
    }

    #[test]
    fn kmeans_and_silhouette_edge_cases() {
        let same = Mat::from_vec(5, 2, vec![3.0; 10]).unwrap();
        assert!(matches!(
            kmeans(&same, 2, 3, 0),
            Err(ScanError::Degenerate(_))
        ));
        assert!(matches!(
            kmeans(&Mat::zeros(1, 2), 2, 3, 0),
            Err(ScanError::TooFewSamples(_))
        ));
        assert!(kmeans(&Mat::zeros(0, 2), 1, 1, 0).is_err());
        // Two points: one per cluster, silhouette 0 (singletons).
        let two = Mat::from_vec(2, 1, vec![0.0, 1.0]).unwrap();
        let km = kmeans(&two, 2, 2, 0).unwrap();
        assert_eq!(km.sizes, vec![1, 1]);
        assert_eq!(silhouette(&two, &km.labels, 2, 100).unwrap(), 0.0);
        assert!(silhouette(&two, &[0, 0], 2, 100).is_err());
        assert!(silhouette(&Mat::zeros(1, 1), &[0], 2, 100).is_err());
        assert!(silhouette(&two, &[0, 5], 2, 100).is_err());
        // Duplicates within clusters: finite, and 1 for perfectly tight clusters.
        let tight = Mat::from_vec(4, 1, vec![0.0, 0.0, 9.0, 9.0]).unwrap();
        let km = kmeans(&tight, 2, 2, 1).unwrap();
        let s = silhouette(&tight, &km.labels, 2, 100).unwrap();
        assert!((s - 1.0).abs() < 1e-12);
        // Two separated blobs are found whatever the seed.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let data: Vec<f64> = (0..200)
            .flat_map(|i| {
                let o = if i < 150 { 0.0 } else { 10.0 };
                [o + gauss(&mut rng), gauss(&mut rng)]
            })
            .collect();
        let x = Mat::from_vec(200, 2, data).unwrap();
        for seed in 0..5 {
            let km = kmeans(&x, 2, 3, seed).unwrap();
            let mut sizes = km.sizes.clone();
            sizes.sort();
            assert_eq!(sizes, vec![50, 150]);
            assert!(silhouette(&x, &km.labels, 2, 1000).unwrap() > 0.7);
        }
    }

    #[test]
    fn robust_statistics() {
        let r = Robust::of(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!(r.median, 3.0);
        assert_eq!(r.mad, 1.0);
        assert!((r.scale - MAD_TO_SD).abs() < 1e-12);
        // Ties: MAD 0 falls back to the mean absolute deviation, finite z.
        let z = robust_z(&[5.0, 5.0, 5.0, 5.0, 9.0]).unwrap();
        assert_eq!(z[0], 0.0);
        assert!(z[4].is_finite() && z[4] > 3.0);
        let z = robust_z(&[2.0, 2.0]).unwrap();
        assert!(z.iter().all(|v| *v == 0.0));
        assert!(robust_z(&[]).is_err());
        assert!(robust_z(&[f64::NAN]).is_err());
    }

    #[test]
    fn conformal_thresholds_and_tails() {
        let clean: Vec<f64> = (1..=99).map(f64::from).collect();
        assert_eq!(conformal_upper(&clean, 0.01).unwrap(), 99.0);
        assert_eq!(conformal_upper(&clean, 0.1).unwrap(), 90.0);
        assert_eq!(conformal_lower(&clean, 0.1).unwrap(), 10.0);
        assert!(conformal_upper(&clean[..50], 0.01).is_err());
        assert!(conformal_upper(&clean, 0.0).is_err());
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_sf(1.959964) - 0.025).abs() < 1e-6);
        assert!((binomial_sf(1, 10, 0.5) - (1.0 - 0.5f64.powi(10))).abs() < 1e-12);
        assert!((binomial_sf(10, 10, 0.5) - 0.5f64.powi(10)).abs() < 1e-15);
        assert_eq!(binomial_sf(0, 10, 0.5), 1.0);
        assert_eq!(binomial_sf(11, 10, 0.5), 0.0);
    }
}
