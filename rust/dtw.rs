//! Dynamic time warping over frame costs computed row by row, in O(Ta + Tb) memory.
//!
//! Steps (1,0), (0,1), (1,1); the distance is the sum of frame costs on the cheapest path.
//! An optional Sakoe-Chiba band keeps |i − j| ≤ w, widened to |Ta − Tb| so that a path
//! always exists. Among equally cheap paths the shorter one wins, which fixes the path
//! length used for normalisation.

use std::sync::OnceLock;

use crate::frames::{Sequence, LANES};
use crate::metric::Metric;
use crate::procrustes::{row_costs, Fused, MulAdd, RowFrame, Separate};

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
    pub missing_cost: f64,
    /// The time alignment.
    pub dtw: DtwOptions,
}

#[derive(Clone, Copy, Debug)]
struct Cell {
    cost: f64,
    steps: u32,
}

impl Cell {
    const UNREACHABLE: Cell = Cell {
        cost: f64::INFINITY,
        steps: u32::MAX,
    };
    const START: Cell = Cell { cost: 0.0, steps: 0 };

    /// Cheaper, or as cheap and shorter.
    #[inline(always)]
    fn better(self, other: Cell) -> Cell {
        if other.cost < self.cost || (other.cost == self.cost && other.steps < self.steps) {
            other
        } else {
            self
        }
    }
}

/// Reusable buffers of one worker thread.
#[derive(Debug, Default)]
pub struct Scratch {
    costs: Vec<f64>,
    previous: Vec<Cell>,
    current: Vec<Cell>,
    frame: Vec<f64>,
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
            if std::env::var_os("GKD_PORTABLE_KERNEL").is_none()
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                return ("avx2-fma", x86::pair_distance_avx2);
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
    fn dtw_avx2(a: &Sequence<'_>, b: &Sequence<'_>, options: &PairOptions, scratch: &mut Scratch) -> f64 {
        dtw::<Fused, 4>(a, b, options, scratch)
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
    let (ta, tb) = (a.len, b.len);
    let width = options
        .dtw
        .band
        .map_or(usize::MAX, |w| w.max(ta.abs_diff(tb)));
    scratch.costs.resize(tb.div_ceil(LANES) * LANES, 0.0);
    scratch.frame.resize(3 * a.shape_landmarks, 0.0);
    scratch.previous.clear();
    scratch.previous.resize(tb, Cell::UNREACHABLE);
    scratch.current.clear();
    scratch.current.resize(tb, Cell::UNREACHABLE);
    let Scratch {
        costs,
        previous,
        current,
        frame,
    } = scratch;

    for i in 0..ta {
        let lo = i.saturating_sub(width);
        let hi = (tb - 1).min(i.saturating_add(width));
        a.gather_frame(i, frame);
        let x = RowFrame {
            shape: frame,
            missing: a.missing[i],
            anchor: a.anchors.get(i).copied().unwrap_or_default(),
        };
        row_costs::<A, W>(&options.metric, options.missing_cost, x, b, lo / LANES..hi / LANES + 1, costs);

        let mut left = Cell::UNREACHABLE;
        for j in lo..=hi {
            let best = if i == 0 && j == 0 {
                Cell::START
            } else {
                let diagonal = if j > 0 { previous[j - 1] } else { Cell::UNREACHABLE };
                diagonal.better(previous[j]).better(left)
            };
            let cell = Cell {
                cost: best.cost + costs[j],
                steps: best.steps.wrapping_add(1),
            };
            current[j] = cell;
            left = cell;
        }
        // The next row reads this one at [lo − 1, hi + 1]: cells outside the band must not
        // keep values from two rows back.
        if lo > 0 {
            current[lo - 1] = Cell::UNREACHABLE;
        }
        if hi + 1 < tb {
            current[hi + 1] = Cell::UNREACHABLE;
        }
        std::mem::swap(previous, current);
    }
    let end = previous[tb - 1];
    if options.dtw.normalize {
        end.cost / f64::from(end.steps)
    } else {
        end.cost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frames::FrameSet;
    use ndarray::Array4;

    fn walk(n: usize, t: usize, l: usize, seed: f64) -> Array4<f64> {
        Array4::from_shape_fn((n, t, l, 3), |(i, f, k, c)| {
            ((i as f64 + seed) * 2.3 + k as f64 * 1.1 + c as f64 * 0.7).sin() + 0.05 * f as f64 * (k + c) as f64
        })
    }

    fn options(band: Option<usize>, normalize: bool) -> PairOptions {
        PairOptions {
            metric: Metric::Procrustes,
            missing_cost: std::f64::consts::SQRT_2,
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
            let x = RowFrame { shape: &frame, missing: a.missing[i], anchor: [0.0; 3] };
            row_costs::<Separate, 4>(&opts.metric, opts.missing_cost, x, b, 0..b.len.div_ceil(LANES), &mut scratch.costs);
            row.copy_from_slice(&scratch.costs[..b.len]);
        }
        let w = opts.dtw.band.map_or(usize::MAX, |w| w.max(a.len.abs_diff(b.len)));
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
        if opts.dtw.normalize { c / s as f64 } else { c }
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
                    assert!((fast - slow).abs() <= 1e-12 * slow.abs().max(1.0), "{fast} vs {slow}");
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
        x.slice_mut(ndarray::s![.., .., .., ..]).map_inplace(|v| *v *= 1.0);
        x.slice_mut(ndarray::s![0, .., .., ..]).fill(0.0);
        x.slice_mut(ndarray::s![1, 0, .., ..]).fill(0.0);
        let set = FrameSet::prepare(x.view(), &[1, 1], &Metric::Procrustes, "x").unwrap();
        let mut scratch = Scratch::default();
        let opts = PairOptions { missing_cost: 7.5, ..options(None, false) };
        // Both single frames missing: 0.
        assert_eq!(pair_distance(&set.sequence(0), &set.sequence(1), &opts, &mut scratch), 0.0);
        let set = FrameSet::prepare(x.view(), &[1, 2], &Metric::Procrustes, "x").unwrap();
        // One missing frame against (missing, present): 0 + 7.5.
        assert_eq!(pair_distance(&set.sequence(0), &set.sequence(1), &opts, &mut scratch), 7.5);
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
        assert!((fast - portable).abs() < 1e-12 * portable, "{fast} vs {portable}");
    }
}
