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
use crate::metric::Metric;

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
    for l in 0..shape_landmarks {
        let (x0, x1, x2) = (x[3 * l], x[3 * l + 1], x[3 * l + 2]);
        let y = &block[3 * l * LANES..][..3 * LANES];
        let (y0, y1, y2) = (&y[offset..][..W], &y[LANES + offset..][..W], &y[2 * LANES + offset..][..W]);
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
/// quartic from λ = 1 (its upper bound for unit-norm shapes), where it falls monotonically.
#[inline(always)]
fn largest_eigenvalues<const W: usize>(s: &[[f64; W]; 9]) -> [f64; W] {
    let (mut c2, mut c1, mut c0) = ([0.0; W], [0.0; W], [0.0; W]);
    for k in 0..W {
        let lane: [f64; 9] = std::array::from_fn(|e| s[e][k]);
        c2[k] = -2.0 * lane.iter().map(|v| v * v).sum::<f64>();
        c1[k] = -8.0 * det3(&lane);
        c0[k] = det4(&key_matrix(&lane));
    }
    let mut lambda = [1.0; W];
    for _ in 0..NEWTON_MAX_STEPS {
        let mut largest_step: f64 = 0.0;
        for k in 0..W {
            let l = lambda[k];
            let l2 = l * l;
            let p = (l2 + c2[k]) * l2 + c1[k] * l + c0[k];
            let dp = (4.0 * l2 + 2.0 * c2[k]) * l + c1[k];
            let step = if dp > 0.0 { p / dp } else { 0.0 };
            lambda[k] = l - step;
            largest_step = largest_step.max(step.abs());
        }
        if largest_step <= NEWTON_TOLERANCE {
            break;
        }
    }
    lambda
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
    let j = (0..4).fold(0, |best, k| if diagonal[k] > diagonal[best] { k } else { best });
    if diagonal[j] < ADJUGATE_FLOOR {
        return jacobi_top_eigenvector(n);
    }
    let v: [f64; 4] = std::array::from_fn(|k| cofactor(&m, k, j));
    let norm = v.iter().map(|e| e * e).sum::<f64>().sqrt();
    v.map(|e| e / norm)
}

/// Eigenvector of the largest eigenvalue of a symmetric 4×4 matrix, by cyclic Jacobi.
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
                let t = if theta == 0.0 { 1.0 } else { t };
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
        [w * w + x * x - y * y - z * z, 2.0 * (x * y - w * z), 2.0 * (x * z + w * y)],
        [2.0 * (y * x + w * z), w * w - x * x + y * y - z * z, 2.0 * (y * z - w * x)],
        [2.0 * (z * x - w * y), 2.0 * (z * y + w * x), w * w - x * x - y * y + z * z],
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

/// Frame costs of row frame `x` against the frames of `b` in blocks `blocks`, written to
/// `out[j]` for each frame j of those blocks that lies within `b`.
#[inline(always)]
pub(crate) fn row_costs<A: MulAdd, const W: usize>(
    metric: &Metric,
    missing_cost: f64,
    x: RowFrame<'_>,
    b: &Sequence<'_>,
    blocks: std::ops::Range<usize>,
    out: &mut [f64],
) {
    let ls = b.shape_landmarks;
    for jb in blocks {
        let block = &b.blocks[jb * b.block_len()..][..b.block_len()];
        for offset in (0..LANES).step_by(W) {
            let s = cross_covariance::<A, W>(x.shape, block, offset, ls);
            let lambda = largest_eigenvalues::<W>(&s);
            for k in 0..W {
                let lane = offset + k;
                let j = jb * LANES + lane;
                if j >= b.len {
                    break;
                }
                out[j] = if x.missing || b.missing[j] {
                    if x.missing && b.missing[j] {
                        0.0
                    } else {
                        missing_cost
                    }
                } else if let Metric::Procrustes = metric {
                    residual(lambda[k])
                } else {
                    let lane_s: [f64; 9] = std::array::from_fn(|e| s[e][k]);
                    let q = optimal_quaternion(&key_matrix(&lane_s), lambda[k]);
                    match metric {
                        Metric::Hand(p) => {
                            let vector = (q[1] * q[1] + q[2] * q[2] + q[3] * q[3]).sqrt();
                            let angle = 2.0 * vector.atan2(q[0].abs());
                            let wrist = b.anchors[j];
                            let f3 = (0..3)
                                .map(|c| (x.anchor[c] - wrist[c]).powi(2))
                                .sum::<f64>()
                                .sqrt();
                            let beyond = (f3 - p.wrist_margin).max(0.0);
                            residual(lambda[k]) / p.sigma_shape
                                + angle * angle / p.sigma_angle
                                + beyond * beyond / p.sigma_wrist
                        }
                        _ => {
                            let transposed = matches!(metric, Metric::ProcrustesPaper);
                            let r = rotation_matrix(&q);
                            landmark_distance_sum(x.shape, block, lane, &r, transposed, ls)
                        }
                    }
                };
            }
        }
    }
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
        let mut p: Vec<f64> = (0..3 * landmarks).map(|k| ((k as f64 + seed) * 1.7).sin()).collect();
        for c in 0..3 {
            let mean = (0..landmarks).map(|l| p[3 * l + c]).sum::<f64>() / landmarks as f64;
            (0..landmarks).for_each(|l| p[3 * l + c] -= mean);
        }
        let norm = p.iter().map(|v| v * v).sum::<f64>().sqrt();
        p.iter().map(|v| v / norm).collect()
    }

    fn covariance(x: &[f64], y: &[f64]) -> [f64; 9] {
        std::array::from_fn(|e| (0..x.len() / 3).map(|l| y[3 * l + e / 3] * x[3 * l + e % 3]).sum())
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
        let score = |r: &[[f64; 3]; 3]| -> f64 {
            apply(r, &y).iter().zip(&x).map(|(a, b)| a * b).sum()
        };
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
    fn jacobi_agrees_with_the_adjugate() {
        let s = covariance(&unit_shape(4.0, 6), &unit_shape(8.0, 6));
        let n = key_matrix(&s);
        let q = optimal_quaternion(&n, lambda_of(&s));
        let v = jacobi_top_eigenvector(&n);
        let dot: f64 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!((dot.abs() - 1.0).abs() < 1e-10);
    }
}
