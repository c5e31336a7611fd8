//! Closed-form Procrustes alignment of frame pairs.
//!
//! For unit-norm shapes X (target) and Y (rotated), `min_R ‖X − R·Y‖² = 2 − 2λ` where λ is
//! the largest eigenvalue of Horn's 4×4 key matrix N built from the cross-covariance
//! `S_ab = Σ_l y_la·x_lb` (Horn 1987, quaternion form). λ is the largest root of
//! `det(λI − N) = λ⁴ + c2·λ² + c1·λ + c0` with `c2 = −2‖S‖²`, `c1 = −8·det S`,
//! `c0 = det N`, found by Newton's method from the upper bound λ = 1 (Theobald 2005, "QCP").
//! Its eigenvector is the optimal rotation as a unit quaternion, needed only by the metrics
//! that use the rotation itself. All of it runs in f64, so that `2 − 2λ` keeps its digits
//! for near-identical frames.

use crate::frames::{Sequence, LANES};
use crate::metric::{Metric, MissingCost};

/// Newton stops once no lane moved by more than this; convergence is quadratic, so the
/// error left is far below it.
const NEWTON_TOLERANCE: f64 = 1e-13;
const NEWTON_MAX_STEPS: usize = 64;
/// Below this |adj(N − λI)| the largest eigenvalue is (nearly) repeated and the adjugate
/// gives no direction: the rotation comes from a Jacobi eigensolver instead.
const ADJUGATE_FLOOR: f64 = 1e-14;

/// Multiply-add, fused where the CPU has FMA; `f64::mul_add` without FMA is a slow libm
/// call, so the portable build multiplies and adds.
pub(crate) trait MulAdd {
    fn mul_add(a: f64, b: f64, c: f64) -> f64;
}

/// Fused multiply-add (only under `target_feature(enable = "fma")`).
pub(crate) struct Fused;
/// Separate multiply and add.
pub(crate) struct Separate;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// One row frame as the kernel reads it.
#[derive(Clone, Copy, Debug)]
pub struct RowFrame<'a> {
    /// Normalised shape, `[landmark][coordinate]`.
    pub shape: &'a [f64],
    /// Degenerate frame, compared by the missing-frame rule.
    pub missing: bool,
    /// Raw wrist (`hand` only).
    pub anchor: [f64; 3],
}

/// Cross-covariances of `x` with W frames of a block at lane offset `offset`: `s[3a + b][k]`
/// = Σ_l y_la·x_lb for lane k.
#[inline(always)]
fn cross_covariance<A: MulAdd, const W: usize>(
    x: &[f64],
    block: &[f64],
    offset: usize,
    shape_landmarks: usize,
) -> [[f64; W]; 9] {
    let mut s = [[0.0; W]; 9];
    let rows = x
        .chunks_exact(3)
        .zip(block.chunks_exact(3 * LANES))
        .take(shape_landmarks);
    for (xl, y) in rows {
        let (x0, x1, x2) = (xl[0], xl[1], xl[2]);
        let (y0, y1, y2) = (
            &y[offset..][..W],
            &y[LANES + offset..][..W],
            &y[2 * LANES + offset..][..W],
        );
        for k in 0..W {
            s[0][k] = A::mul_add(y0[k], x0, s[0][k]);
            s[1][k] = A::mul_add(y0[k], x1, s[1][k]);
            s[2][k] = A::mul_add(y0[k], x2, s[2][k]);
            s[3][k] = A::mul_add(y1[k], x0, s[3][k]);
            s[4][k] = A::mul_add(y1[k], x1, s[4][k]);
            s[5][k] = A::mul_add(y1[k], x2, s[5][k]);
            s[6][k] = A::mul_add(y2[k], x0, s[6][k]);
            s[7][k] = A::mul_add(y2[k], x1, s[7][k]);
            s[8][k] = A::mul_add(y2[k], x2, s[8][k]);
        }
    }
    s
}

/// The 3×3 cross-covariance of lane k.
#[inline(always)]
fn lane_of<const W: usize>(s: &[[f64; W]; 9], k: usize) -> [f64; 9] {
    let mut lane = [0.0; 9];
    for (value, row) in lane.iter_mut().zip(s) {
        *value = row[k];
    }
    lane
}

/// Horn's symmetric key matrix for one cross-covariance `s` (row-major 3×3).
#[inline(always)]
fn key_matrix(s: &[f64; 9]) -> [[f64; 4]; 4] {
    let [sxx, sxy, sxz, syx, syy, syz, szx, szy, szz] = *s;
    let n01 = syz - szy;
    let n02 = szx - sxz;
    let n03 = sxy - syx;
    let n12 = sxy + syx;
    let n13 = szx + sxz;
    let n23 = syz + szy;
    [
        [sxx + syy + szz, n01, n02, n03],
        [n01, sxx - syy - szz, n12, n13],
        [n02, n12, -sxx + syy - szz, n23],
        [n03, n13, n23, -sxx - syy + szz],
    ]
}

/// Determinant of a 4×4 matrix by Laplace expansion over 2×2 minors.
#[inline(always)]
fn det4(m: &[[f64; 4]; 4]) -> f64 {
    let s0 = m[0][0] * m[1][1] - m[1][0] * m[0][1];
    let s1 = m[0][0] * m[1][2] - m[1][0] * m[0][2];
    let s2 = m[0][0] * m[1][3] - m[1][0] * m[0][3];
    let s3 = m[0][1] * m[1][2] - m[1][1] * m[0][2];
    let s4 = m[0][1] * m[1][3] - m[1][1] * m[0][3];
    let s5 = m[0][2] * m[1][3] - m[1][2] * m[0][3];
    let c5 = m[2][2] * m[3][3] - m[3][2] * m[2][3];
    let c4 = m[2][1] * m[3][3] - m[3][1] * m[2][3];
    let c3 = m[2][1] * m[3][2] - m[3][1] * m[2][2];
    let c2 = m[2][0] * m[3][3] - m[3][0] * m[2][3];
    let c1 = m[2][0] * m[3][2] - m[3][0] * m[2][2];
    let c0 = m[2][0] * m[3][1] - m[3][0] * m[2][1];
    s0 * c5 - s1 * c4 + s2 * c3 + s3 * c2 - s4 * c1 + s5 * c0
}

#[inline(always)]
fn det3(s: &[f64; 9]) -> f64 {
    s[0] * (s[4] * s[8] - s[5] * s[7]) - s[1] * (s[3] * s[8] - s[5] * s[6])
        + s[2] * (s[3] * s[7] - s[4] * s[6])
}

/// Largest eigenvalue of the key matrix of every lane, by Newton on the characteristic
/// quartic from an upper bound, where it falls monotonically: λ ≤ σ1 + σ2 + σ3 ≤ √3·‖S‖
/// and λ ≤ ‖X‖·‖Y‖ = 1.
#[inline(always)]
fn largest_eigenvalues<const W: usize>(s: &[[f64; W]; 9]) -> [f64; W] {
    let (mut c2, mut c1, mut c0) = ([0.0; W], [0.0; W], [0.0; W]);
    let mut lambda = [1.0; W];
    for k in 0..W {
        let lane = lane_of(s, k);
        let norm2 = lane.iter().map(|v| v * v).sum::<f64>();
        c2[k] = -2.0 * norm2;
        c1[k] = -8.0 * det3(&lane);
        c0[k] = det4(&key_matrix(&lane));
        lambda[k] = (3.0 * norm2).sqrt().min(1.0);
    }
    for _ in 0..NEWTON_MAX_STEPS {
        // An integer OR, not a float max, so the lanes stay in vector registers.
        let mut moving = 0u64;
        for k in 0..W {
            let l = lambda[k];
            let l2 = l * l;
            let p = (l2 + c2[k]) * l2 + c1[k] * l + c0[k];
            let dp = (4.0 * l2 + 2.0 * c2[k]) * l + c1[k];
            let step = if dp > 0.0 { p / dp } else { 0.0 };
            lambda[k] = l - step;
            moving |= u64::from(step.abs() > NEWTON_TOLERANCE);
        }
        if moving == 0 {
            break;
        }
    }
    lambda
}

/// Angle of the optimal rotation of every lane, from the diagonal of `adj(N − λI)`.
///
/// For a simple λ that adjugate is `c·v·vᵀ` with v the unit quaternion, so
/// `cos²(θ/2) = v_w² = adj_ww / tr(adj)`: no eigenvector is needed. NaN marks a lane whose
/// λ is (nearly) repeated; the caller falls back to the full eigenvector there.
#[inline(always)]
fn rotation_angles<const W: usize>(s: &[[f64; W]; 9], lambda: &[f64; W]) -> [f64; W] {
    let mut angle = [0.0; W];
    for k in 0..W {
        let lane = lane_of(s, k);
        let mut m = key_matrix(&lane);
        (0..4).for_each(|d| m[d][d] -= lambda[k]);
        let minor = |a: usize, b: usize, c: usize| {
            m[a][a] * (m[b][b] * m[c][c] - m[b][c] * m[c][b])
                - m[a][b] * (m[b][a] * m[c][c] - m[b][c] * m[c][a])
                + m[a][c] * (m[b][a] * m[c][b] - m[b][b] * m[c][a])
        };
        let w = minor(1, 2, 3);
        let rest = minor(0, 2, 3) + minor(0, 1, 3) + minor(0, 1, 2);
        let total = w + rest;
        let half = quarter_turn_angle((rest / total).max(0.0).sqrt(), (w / total).max(0.0).sqrt());
        angle[k] = if total.abs() < ADJUGATE_FLOOR {
            f64::NAN
        } else {
            2.0 * half
        };
    }
    angle
}

/// `atan2(s, c)` for s, c ≥ 0 in plain arithmetic, so that it vectorises (libm's atan2
/// does not, and cost a third of the `hand` metric's time).
///
/// Four tangent half-angle steps, `(s, c) → (s, 1 + c)` renormalised, bring the angle
/// below π/32; there the Taylor series of atan to t¹⁵ leaves an error under 1e-18.
#[inline(always)]
fn quarter_turn_angle(s: f64, c: f64) -> f64 {
    const HALVINGS: i32 = 4;
    let norm = (s * s + c * c).sqrt();
    let (mut s, mut c) = (s / norm, c / norm);
    for _ in 0..HALVINGS {
        let c1 = 1.0 + c;
        let r = (s * s + c1 * c1).sqrt();
        (s, c) = (s / r, c1 / r);
    }
    let t = s / c;
    let t2 = t * t;
    // t − t³/3 + t⁵/5 − … − t¹⁵/15, by Horner in t².
    let mut series = -1.0 / 15.0;
    for (odd, sign) in [
        (13.0, 1.0),
        (11.0, -1.0),
        (9.0, 1.0),
        (7.0, -1.0),
        (5.0, 1.0),
        (3.0, -1.0),
    ] {
        series = series * t2 + sign / odd;
    }
    series = series * t2 + 1.0;
    t * series * f64::from(1 << HALVINGS)
}

/// Residual `√(2 − 2λ)`, clamped at 0 against rounding.
#[inline(always)]
fn residual(lambda: f64) -> f64 {
    (2.0 - 2.0 * lambda).max(0.0).sqrt()
}

/// Cofactor (r, c) of a 4×4 matrix.
fn cofactor(m: &[[f64; 4]; 4], r: usize, c: usize) -> f64 {
    let rows: [usize; 3] = std::array::from_fn(|k| if k < r { k } else { k + 1 });
    let cols: [usize; 3] = std::array::from_fn(|k| if k < c { k } else { k + 1 });
    let minor: [f64; 9] = std::array::from_fn(|e| m[rows[e / 3]][cols[e % 3]]);
    let sign = if (r + c) % 2 == 0 { 1.0 } else { -1.0 };
    sign * det3(&minor)
}

/// Unit eigenvector of the key matrix `n` for its largest eigenvalue `lambda`: the optimal
/// rotation as a quaternion (w, x, y, z).
///
/// For a simple eigenvalue, `adj(N − λI)` is a multiple of `v·vᵀ`, so its largest column
/// is v; a repeated one (a rotation that is not unique) falls back to Jacobi.
pub(crate) fn optimal_quaternion(n: &[[f64; 4]; 4], lambda: f64) -> [f64; 4] {
    let mut m = *n;
    for (k, row) in m.iter_mut().enumerate() {
        row[k] -= lambda;
    }
    let diagonal: [f64; 4] = std::array::from_fn(|j| cofactor(&m, j, j).abs());
    let j = (0..4).fold(0, |best, k| {
        if diagonal[k] > diagonal[best] {
            k
        } else {
            best
        }
    });
    if diagonal[j] < ADJUGATE_FLOOR {
        return jacobi_top_eigenvector(n);
    }
    let v: [f64; 4] = std::array::from_fn(|k| cofactor(&m, k, j));
    let norm = v.iter().map(|e| e * e).sum::<f64>().sqrt();
    v.map(|e| e / norm)
}

/// Eigenvector of the largest eigenvalue of a symmetric 4×4 matrix, by cyclic Jacobi.
#[allow(clippy::needless_range_loop)] // matrix code reads best with indices
fn jacobi_top_eigenvector(n: &[[f64; 4]; 4]) -> [f64; 4] {
    let mut a = *n;
    let mut v = [[0.0; 4]; 4];
    for (k, row) in v.iter_mut().enumerate() {
        row[k] = 1.0;
    }
    for _sweep in 0..50 {
        let off: f64 = (0..4)
            .flat_map(|p| (p + 1..4).map(move |q| (p, q)))
            .map(|(p, q)| a[p][q] * a[p][q])
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..4 {
            for q in p + 1..4 {
                if a[p][q].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..4 {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..4 {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vp, vq) = (row[p], row[q]);
                    row[p] = c * vp - s * vq;
                    row[q] = s * vp + c * vq;
                }
            }
        }
    }
    let top = (0..4).fold(0, |best, k| if a[k][k] > a[best][best] { k } else { best });
    std::array::from_fn(|k| v[k][top])
}

/// Rotation matrix of a unit quaternion (w, x, y, z); it maps Y's landmarks onto X's.
pub(crate) fn rotation_matrix(q: &[f64; 4]) -> [[f64; 3]; 3] {
    let [w, x, y, z] = *q;
    [
        [
            w * w + x * x - y * y - z * z,
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (y * x + w * z),
            w * w - x * x + y * y - z * z,
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (z * x - w * y),
            2.0 * (z * y + w * x),
            w * w - x * x - y * y + z * z,
        ],
    ]
}

/// Sum over landmarks of `‖x_l − R·y_l‖` (or `Rᵀ` when `transposed`), y read from lane
/// `lane` of a block.
#[inline(always)]
fn landmark_distance_sum(
    x: &[f64],
    block: &[f64],
    lane: usize,
    rotation: &[[f64; 3]; 3],
    transposed: bool,
    shape_landmarks: usize,
) -> f64 {
    let r = if transposed {
        std::array::from_fn(|i| std::array::from_fn(|j| rotation[j][i]))
    } else {
        *rotation
    };
    let mut total = 0.0;
    for l in 0..shape_landmarks {
        let y: [f64; 3] = std::array::from_fn(|c| block[(3 * l + c) * LANES + lane]);
        let mut d2 = 0.0;
        for c in 0..3 {
            let d = x[3 * l + c] - (r[c][0] * y[0] + r[c][1] * y[1] + r[c][2] * y[2]);
            d2 += d * d;
        }
        total += d2.sqrt();
    }
    total
}

/// Lanes solved together: independent Newton chains hide the latency of the division.
const NEWTON_BATCH: usize = 16;

/// Per-row buffers of the kernel.
#[derive(Debug, Default)]
pub(crate) struct RowWork {
    /// Cross-covariances, `covariance[e * capacity + j]`.
    covariance: Vec<f64>,
    lambda: Vec<f64>,
    angle: Vec<f64>,
    capacity: usize,
}

impl RowWork {
    fn reserve(&mut self, frames: usize) {
        let capacity = frames.div_ceil(NEWTON_BATCH) * NEWTON_BATCH;
        if capacity > self.capacity {
            self.capacity = capacity;
            self.covariance.resize(9 * capacity, 0.0);
            self.lambda.resize(capacity, 0.0);
            self.angle.resize(capacity, 0.0);
        }
    }
}

/// Frame costs of row frame `x` against the frames of `b` in blocks `blocks`, written to
/// `out[j]` for each frame j of those blocks that lies within `b`.
///
/// Three passes over the row, each a plain loop the compiler vectorises: cross-covariances
/// (one multiply-add per landmark, coordinate pair and frame), the largest eigenvalue in
/// batches of [`NEWTON_BATCH`] lanes, then the metric's cost.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // j indexes several per-frame arrays at once
pub(crate) fn row_costs<A: MulAdd, const W: usize>(
    metric: &Metric,
    missing: MissingCost,
    x: RowFrame<'_>,
    b: &Sequence<'_>,
    blocks: std::ops::Range<usize>,
    work: &mut RowWork,
    out: &mut [f64],
) {
    let ls = b.shape_landmarks;
    let first = blocks.start * LANES;
    let end = (blocks.end * LANES).min(b.len);
    work.reserve(b.len.div_ceil(LANES) * LANES);
    let cap = work.capacity;

    for jb in blocks.clone() {
        let block = &b.blocks[jb * b.block_len()..][..b.block_len()];
        for offset in (0..LANES).step_by(W) {
            let s = cross_covariance::<A, W>(x.shape, block, offset, ls);
            for (e, values) in s.iter().enumerate() {
                work.covariance[e * cap + jb * LANES + offset..][..W].copy_from_slice(values);
            }
        }
    }

    let hand = matches!(metric, Metric::Hand(_));
    let mut j = first;
    while j < end {
        // The batch may run past the row; lanes there repeat the last frame's covariance.
        let mut s = [[0.0; NEWTON_BATCH]; 9];
        for (e, values) in s.iter_mut().enumerate() {
            let row = &work.covariance[e * cap..][..cap];
            for (k, value) in values.iter_mut().enumerate() {
                *value = row[(j + k).min(end - 1)];
            }
        }
        let lambda = largest_eigenvalues::<NEWTON_BATCH>(&s);
        let n = NEWTON_BATCH.min(end - j);
        work.lambda[j..j + n].copy_from_slice(&lambda[..n]);
        if hand {
            let angle = rotation_angles::<NEWTON_BATCH>(&s, &lambda);
            work.angle[j..j + n].copy_from_slice(&angle[..n]);
        }
        j += NEWTON_BATCH;
    }

    match metric {
        Metric::Procrustes => {
            for (cost, &lambda) in out[first..end].iter_mut().zip(&work.lambda[first..end]) {
                *cost = residual(lambda);
            }
        }
        Metric::Hand(p) => {
            for j in first..end {
                let lambda = work.lambda[j];
                let mut angle = work.angle[j];
                if angle.is_nan() {
                    let s: [f64; 9] = std::array::from_fn(|e| work.covariance[e * cap + j]);
                    let q = optimal_quaternion(&key_matrix(&s), lambda);
                    let vector = (q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
                    angle = 2.0 * vector.atan2(q[0].abs());
                }
                let wrist = b.anchors[j];
                let f3 = (0..3)
                    .map(|c| (x.anchor[c] - wrist[c]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let beyond = (f3 - p.wrist_margin).max(0.0);
                out[j] = residual(lambda) / p.sigma_shape
                    + angle * angle / p.sigma_angle
                    + beyond * beyond / p.sigma_wrist;
            }
        }
        Metric::ProcrustesSum | Metric::ProcrustesPaper => {
            let transposed = matches!(metric, Metric::ProcrustesPaper);
            for j in first..end {
                let s: [f64; 9] = std::array::from_fn(|e| work.covariance[e * cap + j]);
                let r = rotation_matrix(&optimal_quaternion(&key_matrix(&s), work.lambda[j]));
                let block = &b.blocks[(j / LANES) * b.block_len()..][..b.block_len()];
                out[j] = landmark_distance_sum(x.shape, block, j % LANES, &r, transposed, ls);
            }
        }
    }
    // The missing-frame rule overrides whatever the shapes stored in their place gave.
    if !(x.missing || b.any_missing) {
        return;
    }
    for j in first..end {
        out[j] = match (x.missing, b.missing[j]) {
            (false, false) => continue,
            (true, true) => 0.0,
            (x_missing, _) => match missing {
                MissingCost::Constant(cost) => cost,
                MissingCost::ZeroShape if x_missing => {
                    let block = &b.blocks[(j / LANES) * b.block_len()..][..b.block_len()];
                    landmark_norm_sum(|k| block[k * LANES + j % LANES], ls)
                }
                MissingCost::ZeroShape => landmark_norm_sum(|k| x.shape[k], ls),
            },
        };
    }
}

/// Σ_l ‖p_l‖ for a shape whose value k (`[landmark][coordinate]`) is `value(k)`.
fn landmark_norm_sum(value: impl Fn(usize) -> f64, shape_landmarks: usize) -> f64 {
    (0..shape_landmarks)
        .map(|l| (0..3).map(|c| value(3 * l + c).powi(2)).sum::<f64>().sqrt())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation_about(axis: [f64; 3], angle: f64) -> [[f64; 3]; 3] {
        let n = (axis[0] * axis[0] + axis[1] * axis[1] + axis[2] * axis[2]).sqrt();
        let (s, c) = (angle / 2.0).sin_cos();
        rotation_matrix(&[c, s * axis[0] / n, s * axis[1] / n, s * axis[2] / n])
    }

    fn apply(r: &[[f64; 3]; 3], p: &[f64]) -> Vec<f64> {
        p.chunks(3)
            .flat_map(|v| (0..3).map(move |i| r[i][0] * v[0] + r[i][1] * v[1] + r[i][2] * v[2]))
            .collect()
    }

    fn unit_shape(seed: f64, landmarks: usize) -> Vec<f64> {
        let mut p: Vec<f64> = (0..3 * landmarks)
            .map(|k| ((k as f64 + seed) * 1.7).sin())
            .collect();
        for c in 0..3 {
            let mean = (0..landmarks).map(|l| p[3 * l + c]).sum::<f64>() / landmarks as f64;
            (0..landmarks).for_each(|l| p[3 * l + c] -= mean);
        }
        let norm = p.iter().map(|v| v * v).sum::<f64>().sqrt();
        p.iter().map(|v| v / norm).collect()
    }

    fn covariance(x: &[f64], y: &[f64]) -> [f64; 9] {
        std::array::from_fn(|e| {
            (0..x.len() / 3)
                .map(|l| y[3 * l + e / 3] * x[3 * l + e % 3])
                .sum()
        })
    }

    fn lambda_of(s: &[f64; 9]) -> f64 {
        let lanes: [[f64; 1]; 9] = std::array::from_fn(|e| [s[e]]);
        largest_eigenvalues::<1>(&lanes)[0]
    }

    #[test]
    fn recovers_a_known_rotation() {
        let y = unit_shape(0.3, 7);
        let r = rotation_about([0.2, -1.0, 0.5], 2.1);
        let x = apply(&r, &y);
        let s = covariance(&x, &y);
        let lambda = lambda_of(&s);
        assert!((lambda - 1.0).abs() < 1e-14, "{lambda}");
        assert!(residual(lambda) < 1e-7);
        let q = optimal_quaternion(&key_matrix(&s), lambda);
        let found = rotation_matrix(&q);
        for i in 0..3 {
            for j in 0..3 {
                assert!((found[i][j] - r[i][j]).abs() < 1e-9, "{found:?} vs {r:?}");
            }
        }
    }

    #[test]
    fn eigenvalue_is_the_best_alignment_score() {
        // λ = Σ x·R*y, and no other rotation scores higher.
        let (x, y) = (unit_shape(1.0, 9), unit_shape(5.0, 9));
        let s = covariance(&x, &y);
        let lambda = lambda_of(&s);
        let q = optimal_quaternion(&key_matrix(&s), lambda);
        let score =
            |r: &[[f64; 3]; 3]| -> f64 { apply(r, &y).iter().zip(&x).map(|(a, b)| a * b).sum() };
        assert!((score(&rotation_matrix(&q)) - lambda).abs() < 1e-12);
        for k in 0..200 {
            let k = k as f64;
            let r = rotation_about([k.sin(), (2.0 * k).cos(), 0.3], 0.1 * k);
            assert!(score(&r) <= lambda + 1e-12);
        }
    }

    #[test]
    fn quartic_coefficients_match_the_key_matrix() {
        // det(λI − N) at a few λ equals the quartic with the closed-form coefficients.
        let s = covariance(&unit_shape(2.0, 5), &unit_shape(3.0, 5));
        let n = key_matrix(&s);
        let c2 = -2.0 * s.iter().map(|v| v * v).sum::<f64>();
        let c1 = -8.0 * det3(&s);
        let c0 = det4(&n);
        for lambda in [-0.7, 0.1, 0.4, 1.3] {
            let mut m = n.map(|row| row.map(|v| -v));
            (0..4).for_each(|k| m[k][k] += lambda);
            let quartic = lambda.powi(4) + c2 * lambda * lambda + c1 * lambda + c0;
            assert!((det4(&m) - quartic).abs() < 1e-12);
        }
    }

    #[test]
    fn repeated_eigenvalue_still_gives_an_optimal_rotation() {
        // A collinear shape can spin freely about its line: λ is repeated.
        let mut y = vec![0.0; 9];
        for (l, t) in [-1.0, 0.0, 1.0].iter().enumerate() {
            y[3 * l] = t / 2f64.sqrt();
        }
        let s = covariance(&y, &y);
        let lambda = lambda_of(&s);
        let q = optimal_quaternion(&key_matrix(&s), lambda);
        let r = rotation_matrix(&q);
        let moved = apply(&r, &y);
        let d: f64 = moved.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum();
        assert!(d < 1e-12, "{d}");
    }

    #[test]
    fn angle_from_the_adjugate_diagonal_is_the_rotation_angle() {
        let y = unit_shape(0.7, 6);
        for angle in [1e-3, 0.4, 1.9, 3.0] {
            let x = apply(&rotation_about([1.0, 0.5, -0.3], angle), &y);
            let s = covariance(&x, &y);
            let lanes: [[f64; 1]; 9] = std::array::from_fn(|e| [s[e]]);
            let lambda = largest_eigenvalues::<1>(&lanes);
            let found = rotation_angles::<1>(&lanes, &lambda)[0];
            assert!((found - angle).abs() < 1e-6, "{found} vs {angle}");
        }
        // A partial fit: the angle still matches the optimal quaternion's.
        let (x, y) = (unit_shape(1.5, 6), unit_shape(9.0, 6));
        let s = covariance(&x, &y);
        let lanes: [[f64; 1]; 9] = std::array::from_fn(|e| [s[e]]);
        let lambda = largest_eigenvalues::<1>(&lanes);
        let q = optimal_quaternion(&key_matrix(&s), lambda[0]);
        let expected = 2.0
            * (q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
                .sqrt()
                .atan2(q[0].abs());
        assert!((rotation_angles::<1>(&lanes, &lambda)[0] - expected).abs() < 1e-9);
    }

    #[test]
    fn quarter_turn_angle_matches_atan2() {
        for k in 0..=1000 {
            let angle = std::f64::consts::FRAC_PI_2 * k as f64 / 1000.0;
            let (s, c) = angle.sin_cos();
            let c = c.max(0.0);
            for scale in [1.0, 0.3] {
                let found = quarter_turn_angle(scale * s, scale * c);
                let expected = s.atan2(c);
                assert!(
                    (found - expected).abs() <= 1e-15 * expected,
                    "{angle}: {found} vs {expected}"
                );
            }
        }
        assert_eq!(quarter_turn_angle(0.0, 1.0), 0.0);
    }

    #[test]
    fn jacobi_agrees_with_the_adjugate() {
        let s = covariance(&unit_shape(4.0, 6), &unit_shape(8.0, 6));
        let n = key_matrix(&s);
        let q = optimal_quaternion(&n, lambda_of(&s));
        let v = jacobi_top_eigenvector(&n);
        let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-10);
    }
}
