//! Dynamic time warping over frame costs computed row by row, in O(Ta + Tb) memory.
//!
//! Steps (1,0), (0,1), (1,1); the distance is the sum of frame costs on the cheapest path.
//! An optional Sakoe-Chiba band keeps |i − j| ≤ w, widened to |Ta − Tb| so that a path
//! always exists. Among equally cheap paths the shorter one wins, which fixes the path
//! length used for normalisation.

use std::sync::OnceLock;

use crate::frames::{Sequence, LANES};
use crate::metric::{Metric, MissingCost};
use crate::procrustes::{row_costs, Fused, MulAdd, RowFrame, RowWork, Separate};

/// Options of the time alignment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DtwOptions {
    /// Sakoe-Chiba half-width in frames; `None` for no band.
    pub band: Option<usize>,
    /// Divide the distance by the number of cells on the best path.
    pub normalize: bool,
}

/// Everything that changes a pair's distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PairOptions {
    /// The frame cost.
    pub metric: Metric,
    /// Cost of a missing frame against a present one.
    pub missing: MissingCost,
    /// The time alignment.
    pub dtw: DtwOptions,
}

/// Rows per strip: the wavefront's vector width.
const STRIP: usize = 8;

/// Reusable buffers of one worker thread.
#[derive(Debug, Default)]
pub struct Scratch {
    costs: Vec<f64>,
    /// Frame costs of one strip, skewed: `skewed[(j + r) * STRIP + r]` is cost(i0 + r, j),
    /// so each anti-diagonal is contiguous.
    skewed: Vec<f64>,
    /// Last row of the previous strip, and the one being written: cost and path length.
    above: Vec<(f64, f64)>,
    below: Vec<(f64, f64)>,
    frame: Vec<f64>,
    row: RowWork,
}

type PairFn = fn(&Sequence<'_>, &Sequence<'_>, &PairOptions, &mut Scratch) -> f64;

/// The DTW distance between two sequences of the same [`crate::FrameSet`] layout.
///
/// Runs the fastest kernel this CPU supports (see [`kernel_name`]).
pub fn pair_distance(
    a: &Sequence<'_>,
    b: &Sequence<'_>,
    options: &PairOptions,
    scratch: &mut Scratch,
) -> f64 {
    (selected_kernel().1)(a, b, options, scratch)
}

/// Name of the kernel [`pair_distance`] runs on this CPU.
pub fn kernel_name() -> &'static str {
    selected_kernel().0
}

fn selected_kernel() -> &'static (&'static str, PairFn) {
    static KERNEL: OnceLock<(&'static str, PairFn)> = OnceLock::new();
    KERNEL.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::env::var_os("GKD_PORTABLE_KERNEL").is_none() {
                if is_x86_feature_detected!("avx512f")
                    && std::env::var_os("GKD_NO_AVX512").is_none()
                {
                    return ("avx512", x86::pair_distance_avx512);
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    return ("avx2-fma", x86::pair_distance_avx2);
                }
            }
        }
        ("portable", pair_distance_portable)
    })
}

fn pair_distance_portable(
    a: &Sequence<'_>,
    b: &Sequence<'_>,
    options: &PairOptions,
    scratch: &mut Scratch,
) -> f64 {
    dtw::<Separate, 4>(a, b, options, scratch)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    fn dtw_avx2(
        a: &Sequence<'_>,
        b: &Sequence<'_>,
        options: &PairOptions,
        scratch: &mut Scratch,
    ) -> f64 {
        dtw::<Fused, 4>(a, b, options, scratch)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    fn dtw_avx512(
        a: &Sequence<'_>,
        b: &Sequence<'_>,
        options: &PairOptions,
        scratch: &mut Scratch,
    ) -> f64 {
        dtw::<Fused, 8>(a, b, options, scratch)
    }

    pub(super) fn pair_distance_avx512(
        a: &Sequence<'_>,
        b: &Sequence<'_>,
        options: &PairOptions,
        scratch: &mut Scratch,
    ) -> f64 {
        // SAFETY: selected only after `is_x86_feature_detected!` found AVX-512F.
        unsafe { dtw_avx512(a, b, options, scratch) }
    }

    pub(super) fn pair_distance_avx2(
        a: &Sequence<'_>,
        b: &Sequence<'_>,
        options: &PairOptions,
        scratch: &mut Scratch,
    ) -> f64 {
        // SAFETY: selected only after `is_x86_feature_detected!` found AVX2 and FMA.
        unsafe { dtw_avx2(a, b, options, scratch) }
    }
}

#[inline(always)]
fn dtw<A: MulAdd, const W: usize>(
    a: &Sequence<'_>,
    b: &Sequence<'_>,
    options: &PairOptions,
    scratch: &mut Scratch,
) -> f64 {
    if options.dtw.normalize {
        dtw_strips::<A, W, true>(a, b, options, scratch)
    } else {
        dtw_strips::<A, W, false>(a, b, options, scratch)
    }
}

/// DTW over strips of [`STRIP`] rows. Within a strip, lane r holds row i0 + r and lags r
/// columns behind lane 0, so every step updates one anti-diagonal: cells that do not depend
/// on each other, computed side by side instead of one after another along the row.
/// `STEPS` tracks path lengths (for normalisation and its tie-break).
#[inline(always)]
fn dtw_strips<A: MulAdd, const W: usize, const STEPS: bool>(
    a: &Sequence<'_>,
    b: &Sequence<'_>,
    options: &PairOptions,
    scratch: &mut Scratch,
) -> f64 {
    const FAR: f64 = f64::INFINITY;
    let (ta, tb) = (a.len, b.len);
    let width = options
        .dtw
        .band
        .map_or(usize::MAX, |w| w.max(ta.abs_diff(tb)));
    let Scratch {
        costs,
        skewed,
        above,
        below,
        frame,
        row,
    } = scratch;
    costs.resize(tb.div_ceil(LANES) * LANES, 0.0);
    frame.resize(3 * a.shape_landmarks, 0.0);
    skewed.resize((tb + STRIP) * STRIP, FAR);
    above.clear();
    above.resize(tb, (FAR, 0.0));
    below.clear();
    below.resize(tb, (FAR, 0.0));
    // D[i0 − 1][−1]: the start of every path for the first strip, unreachable after.
    let mut corner = (0.0, 0.0);

    for i0 in (0..ta).step_by(STRIP) {
        let rows = STRIP.min(ta - i0);
        skewed.fill(FAR);
        for r in 0..rows {
            let i = i0 + r;
            let lo = i.saturating_sub(width);
            let hi = (tb - 1).min(i.saturating_add(width));
            a.gather_frame(i, frame);
            let x = RowFrame {
                shape: frame,
                missing: a.missing[i],
                anchor: a.anchors.get(i).copied().unwrap_or_default(),
            };
            row_costs::<A, W>(
                &options.metric,
                options.missing,
                x,
                b,
                lo / LANES..hi / LANES + 1,
                row,
                costs,
            );
            for (j, &cost) in costs.iter().enumerate().take(hi + 1).skip(lo) {
                skewed[(j + r) * STRIP + r] = cost;
            }
        }

        let last = rows - 1;
        let (mut cost1, mut cost2) = ([FAR; STRIP], [FAR; STRIP]);
        let (mut steps1, mut steps2) = ([0.0; STRIP], [0.0; STRIP]);
        for t in 0..tb + last {
            let frame_cost = &skewed[t * STRIP..][..STRIP];
            let up0 = above.get(t).copied().unwrap_or((FAR, 0.0));
            let diagonal0 = if t == 0 {
                corner
            } else {
                above.get(t - 1).copied().unwrap_or((FAR, 0.0))
            };
            let mut cost = [0.0; STRIP];
            let mut steps = [0.0; STRIP];
            for r in 0..STRIP {
                // Predecessors of cell (i0 + r, t − r): left is this lane one step ago; up and
                // diagonal are the lane above one and two steps ago (the row above the strip
                // for lane 0).
                let (up, up_steps) = if r == 0 {
                    up0
                } else {
                    (cost1[r - 1], steps1[r - 1])
                };
                let (diagonal, diagonal_steps) = if r == 0 {
                    diagonal0
                } else {
                    (cost2[r - 1], steps2[r - 1])
                };
                let (left, left_steps) = (cost1[r], steps1[r]);
                let (mut best, mut best_steps) = (diagonal, diagonal_steps);
                for (c, s) in [(up, up_steps), (left, left_steps)] {
                    let take = if STEPS {
                        c < best || (c == best && s < best_steps)
                    } else {
                        c < best
                    };
                    best = if take { c } else { best };
                    best_steps = if take { s } else { best_steps };
                }
                cost[r] = best + frame_cost[r];
                steps[r] = best_steps + 1.0;
            }
            if t >= last {
                below[t - last] = (cost[last], steps[last]);
            }
            (cost2, cost1) = (cost1, cost);
            (steps2, steps1) = (steps1, steps);
        }
        std::mem::swap(above, below);
        corner = (FAR, 0.0);
    }
    let (cost, steps) = above[tb - 1];
    if STEPS {
        cost / steps
    } else {
        cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::FrameSet;
    use ndarray::Array4;

    fn walk(n: usize, t: usize, l: usize, seed: f64) -> Array4<f64> {
        Array4::from_shape_fn((n, t, l, 3), |(i, f, k, c)| {
            ((i as f64 + seed) * 2.3 + k as f64 * 1.1 + c as f64 * 0.7).sin()
                + 0.05 * f as f64 * (k + c) as f64
        })
    }

    fn options(band: Option<usize>, normalize: bool) -> PairOptions {
        PairOptions {
            metric: Metric::Procrustes,
            missing: MissingCost::Constant(std::f64::consts::SQRT_2),
            dtw: DtwOptions { band, normalize },
        }
    }

    /// Full-table DTW over the same frame costs, the obvious way.
    fn full_table(a: &Sequence<'_>, b: &Sequence<'_>, opts: &PairOptions) -> f64 {
        let mut scratch = Scratch::default();
        let mut cost = vec![vec![0.0; b.len]; a.len];
        for (i, row) in cost.iter_mut().enumerate() {
            let mut frame = vec![0.0; 3 * a.shape_landmarks];
            a.gather_frame(i, &mut frame);
            scratch.costs.resize(b.len.div_ceil(LANES) * LANES, 0.0);
            let x = RowFrame {
                shape: &frame,
                missing: a.missing[i],
                anchor: [0.0; 3],
            };
            row_costs::<Separate, 4>(
                &opts.metric,
                opts.missing,
                x,
                b,
                0..b.len.div_ceil(LANES),
                &mut scratch.row,
                &mut scratch.costs,
            );
            row.copy_from_slice(&scratch.costs[..b.len]);
        }
        let w = opts
            .dtw
            .band
            .map_or(usize::MAX, |w| w.max(a.len.abs_diff(b.len)));
        let mut d = vec![vec![(f64::INFINITY, 0u32); b.len + 1]; a.len + 1];
        d[0][0] = (0.0, 0);
        for i in 1..=a.len {
            for j in 1..=b.len {
                if (i as i64 - j as i64).unsigned_abs() as usize > w {
                    continue;
                }
                let mut best = d[i - 1][j - 1];
                for cand in [d[i - 1][j], d[i][j - 1]] {
                    if cand.0 < best.0 || (cand.0 == best.0 && cand.1 < best.1) {
                        best = cand;
                    }
                }
                d[i][j] = (best.0 + cost[i - 1][j - 1], best.1 + 1);
            }
        }
        let (c, s) = d[a.len][b.len];
        if opts.dtw.normalize {
            c / s as f64
        } else {
            c
        }
    }

    #[test]
    fn matches_the_full_table_with_band_and_normalisation() {
        let x = walk(3, 23, 6, 0.0);
        let set = FrameSet::prepare(x.view(), &[23, 9, 17], &Metric::Procrustes, "x").unwrap();
        let mut scratch = Scratch::default();
        for band in [None, Some(0), Some(2), Some(5)] {
            for normalize in [false, true] {
                let opts = options(band, normalize);
                for (i, j) in [(0, 1), (1, 2), (2, 0)] {
                    let (a, b) = (set.sequence(i), set.sequence(j));
                    let fast = pair_distance(&a, &b, &opts, &mut scratch);
                    let slow = full_table(&a, &b, &opts);
                    assert!(
                        (fast - slow).abs() <= 1e-12 * slow.abs().max(1.0),
                        "{fast} vs {slow}"
                    );
                }
            }
        }
    }

    #[test]
    fn single_frames_and_self_distance() {
        let x = walk(2, 5, 4, 1.0);
        let set = FrameSet::prepare(x.view(), &[1, 5], &Metric::Procrustes, "x").unwrap();
        let mut scratch = Scratch::default();
        let (a, b) = (set.sequence(0), set.sequence(1));
        let opts = options(Some(0), true);
        let d = pair_distance(&a, &b, &opts, &mut scratch);
        assert!((d - full_table(&a, &b, &opts)).abs() < 1e-12);
        assert!(pair_distance(&b, &b, &opts, &mut scratch) < 1e-7);
    }

    #[test]
    fn missing_frames_follow_the_rule() {
        let mut x = walk(2, 4, 5, 2.0);
        x.slice_mut(ndarray::s![.., .., .., ..])
            .map_inplace(|v| *v *= 1.0);
        x.slice_mut(ndarray::s![0, .., .., ..]).fill(0.0);
        x.slice_mut(ndarray::s![1, 0, .., ..]).fill(0.0);
        let set = FrameSet::prepare(x.view(), &[1, 1], &Metric::Procrustes, "x").unwrap();
        let mut scratch = Scratch::default();
        let opts = PairOptions {
            missing: MissingCost::Constant(7.5),
            ..options(None, false)
        };
        // Both single frames missing: 0.
        assert_eq!(
            pair_distance(&set.sequence(0), &set.sequence(1), &opts, &mut scratch),
            0.0
        );
        let set = FrameSet::prepare(x.view(), &[1, 2], &Metric::Procrustes, "x").unwrap();
        // One missing frame against (missing, present): 0 + 7.5.
        assert_eq!(
            pair_distance(&set.sequence(0), &set.sequence(1), &opts, &mut scratch),
            7.5
        );
    }

    #[test]
    fn portable_and_dispatched_kernels_agree() {
        let x = walk(2, 19, 21, 3.0);
        let set = FrameSet::prepare(x.view(), &[19, 13], &Metric::Procrustes, "x").unwrap();
        let mut scratch = Scratch::default();
        let opts = options(None, false);
        let (a, b) = (set.sequence(0), set.sequence(1));
        let fast = pair_distance(&a, &b, &opts, &mut scratch);
        let portable = pair_distance_portable(&a, &b, &opts, &mut scratch);
        assert!(
            (fast - portable).abs() < 1e-12 * portable,
            "{fast} vs {portable}"
        );
    }
}
