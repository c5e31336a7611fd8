//! All-pairs scheduling with rayon: tasks of one row sequence against a run of column
//! sequences, so the row stays in cache and even a single query spreads over every core.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ndarray::Array2;
use rayon::prelude::*;

use crate::dtw::{pair_distance, DtwOptions, PairOptions, Scratch};
use crate::error::{invalid, GkdError, Result};
use crate::frames::{try_zeroed, FrameSet};
use crate::metric::{Metric, MissingCost};

/// Column sequences per task: small enough to balance two cores on one query, large enough
/// that scheduling costs nothing next to the DTW work.
const COLUMNS_PER_TASK: usize = 16;

/// Cancellation and progress shared between a running computation and its caller.
#[derive(Debug, Default)]
pub struct Control {
    cancelled: AtomicBool,
    pairs_done: AtomicU64,
}

impl Control {
    /// A fresh control: not cancelled, nothing done.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the computation to stop; it returns [`GkdError::Cancelled`] soon after.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Control::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Pairs finished so far.
    pub fn pairs_done(&self) -> u64 {
        self.pairs_done.load(Ordering::Relaxed)
    }
}

/// Options of an all-pairs computation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EngineOptions {
    /// The frame cost.
    pub metric: Metric,
    /// The time alignment.
    pub dtw: DtwOptions,
    /// Cost of a missing frame against a present one; `None` for the metric's largest
    /// ([`Metric::max_cost`]), or for `ProcrustesPaper` the published zero-shape rule.
    pub missing_cost: Option<f64>,
}

impl EngineOptions {
    /// Options with the given metric, no band, no normalisation, default missing cost.
    pub fn new(metric: Metric) -> Self {
        Self {
            metric,
            dtw: DtwOptions::default(),
            missing_cost: None,
        }
    }

    fn pair_options(&self, shape_landmarks: usize) -> Result<PairOptions> {
        let missing = match self.missing_cost {
            Some(c) if !(c.is_finite() && c >= 0.0) => {
                return Err(invalid!(
                    "missing_cost must be a finite number >= 0, got {c}"
                ))
            }
            Some(c) => MissingCost::Constant(c),
            None if self.metric == Metric::ProcrustesPaper => MissingCost::ZeroShape,
            None => MissingCost::Constant(self.metric.max_cost(shape_landmarks)),
        };
        Ok(PairOptions {
            metric: self.metric,
            missing,
            dtw: self.dtw,
        })
    }
}

/// Number of pairs [`cross`] computes for `n` × `m` sequences.
pub fn cross_pair_count(n: usize, m: usize) -> u64 {
    n as u64 * m as u64
}

/// Number of pairs [`pairwise`] computes for `n` sequences: each unordered pair once, or
/// each ordered pair for a metric that is not symmetric.
pub fn pairwise_pair_count(n: usize, metric: &Metric) -> u64 {
    let n = n as u64;
    let ordered = n * n.saturating_sub(1);
    if metric.is_symmetric() {
        ordered / 2
    } else {
        ordered
    }
}

/// Distances between every sequence of `a` (rows) and of `b` (columns).
pub fn cross(
    a: &FrameSet,
    b: &FrameSet,
    options: &EngineOptions,
    control: &Control,
) -> Result<Array2<f64>> {
    if a.shape_landmarks() != b.shape_landmarks() {
        return Err(invalid!(
            "a and b must have the same number of landmarks, got {} and {}",
            a.shape_landmarks(),
            b.shape_landmarks()
        ));
    }
    let pair = options.pair_options(a.shape_landmarks())?;
    fill(a, b, &pair, control, |_, _| true)
}

/// Distances between all sequences of `x`: symmetric, zero diagonal.
///
/// For a symmetric metric each unordered pair is computed once and mirrored.
pub fn pairwise(x: &FrameSet, options: &EngineOptions, control: &Control) -> Result<Array2<f64>> {
    let pair = options.pair_options(x.shape_landmarks())?;
    if options.metric.is_symmetric() {
        let mut d = fill(x, x, &pair, control, |i, j| j > i)?;
        for i in 0..x.len() {
            for j in 0..i {
                d[[i, j]] = d[[j, i]];
            }
        }
        Ok(d)
    } else {
        fill(x, x, &pair, control, |i, j| j != i)
    }
}

/// Runs `work` on a rayon pool of `threads` threads (`None`: one per core).
pub fn with_threads<R: Send>(threads: Option<usize>, work: impl FnOnce() -> R + Send) -> Result<R> {
    if threads == Some(0) {
        return Err(invalid!("threads must be at least 1, got 0"));
    }
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    let pool = builder
        .build()
        .map_err(|e| invalid!("could not start {threads:?} threads: {e}"))?;
    Ok(pool.install(work))
}

/// Computes the entries (i, j) for which `wanted(i, j)`, leaving the others at zero.
fn fill(
    rows: &FrameSet,
    columns: &FrameSet,
    pair: &PairOptions,
    control: &Control,
    wanted: impl Fn(usize, usize) -> bool + Sync,
) -> Result<Array2<f64>> {
    let (n, m) = (rows.len(), columns.len());
    let mut out = try_zeroed(n * m, "the distance matrix")?;
    if m > 0 {
        let mut tasks: Vec<(usize, usize, &mut [f64])> = out
            .chunks_mut(m)
            .enumerate()
            .flat_map(|(i, row)| {
                row.chunks_mut(COLUMNS_PER_TASK)
                    .enumerate()
                    .map(move |(c, chunk)| (i, c * COLUMNS_PER_TASK, chunk))
            })
            .filter(|(i, j0, chunk)| (*j0..*j0 + chunk.len()).any(|j| wanted(*i, j)))
            .collect();
        // Rows of a triangle hold very different amounts of work; interleaving first and last
        // rows (0, n−1, 1, n−2, …) gives every contiguous range of tasks, which is what rayon
        // splits between threads, about the same work.
        tasks.sort_by_key(|&(i, j0, _)| (i.min(n - 1 - i), i, j0));
        tasks
            .into_par_iter()
            .for_each_init(Scratch::default, |scratch, (i, j0, chunk)| {
                if control.is_cancelled() {
                    return;
                }
                let a = rows.sequence(i);
                let mut done = 0;
                for (k, slot) in chunk.iter_mut().enumerate() {
                    if wanted(i, j0 + k) {
                        *slot = pair_distance(&a, &columns.sequence(j0 + k), pair, scratch);
                        done += 1;
                    }
                }
                control.pairs_done.fetch_add(done, Ordering::Relaxed);
            });
    }
    if control.is_cancelled() {
        return Err(GkdError::Cancelled);
    }
    Array2::from_shape_vec((n, m), out).map_err(|e| invalid!("internal shape error: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::HandParams;
    use ndarray::Array4;

    fn motion(n: usize, t: usize, l: usize) -> Array4<f32> {
        Array4::from_shape_fn((n, t, l, 3), |(i, f, k, c)| {
            ((i * 13 + k * 5 + c) as f32 * 0.61).sin() + 0.1 * f as f32 * ((i + k + c) % 3) as f32
        })
    }

    #[test]
    fn pairwise_is_symmetric_with_zero_diagonal_and_matches_cross() {
        let x = motion(7, 12, 5);
        let lengths = [12, 3, 7, 12, 1, 9, 10];
        for metric in [
            Metric::Procrustes,
            Metric::ProcrustesSum,
            Metric::Hand(HandParams::default()),
        ] {
            let set = FrameSet::prepare(x.view(), &lengths, &metric, "x").unwrap();
            let options = EngineOptions::new(metric);
            let p = pairwise(&set, &options, &Control::new()).unwrap();
            let c = cross(&set, &set, &options, &Control::new()).unwrap();
            for i in 0..7 {
                assert_eq!(p[[i, i]], 0.0);
                for j in 0..7 {
                    assert_eq!(p[[i, j]], p[[j, i]]);
                    if i != j {
                        assert!((p[[i, j]] - c[[i, j]]).abs() < 1e-12 * c[[i, j]].max(1.0));
                    }
                }
            }
        }
    }

    #[test]
    fn paper_metric_is_not_mirrored() {
        let x = motion(4, 6, 4);
        let set = FrameSet::prepare(x.view(), &[6; 4], &Metric::ProcrustesPaper, "x").unwrap();
        let options = EngineOptions::new(Metric::ProcrustesPaper);
        let p = pairwise(&set, &options, &Control::new()).unwrap();
        let c = cross(&set, &set, &options, &Control::new()).unwrap();
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    assert_eq!(p[[i, j]], c[[i, j]]);
                }
            }
        }
        assert_eq!(pairwise_pair_count(4, &Metric::ProcrustesPaper), 12);
    }

    #[test]
    fn thread_count_does_not_change_results_and_progress_counts_pairs() {
        let x = motion(9, 10, 6);
        let set = FrameSet::prepare(x.view(), &[10; 9], &Metric::Procrustes, "x").unwrap();
        let options = EngineOptions::new(Metric::Procrustes);
        let control = Control::new();
        let one = with_threads(Some(1), || pairwise(&set, &options, &control))
            .unwrap()
            .unwrap();
        assert_eq!(
            control.pairs_done(),
            pairwise_pair_count(9, &Metric::Procrustes)
        );
        let two = with_threads(Some(2), || pairwise(&set, &options, &Control::new()))
            .unwrap()
            .unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn cancelled_run_returns_no_result() {
        let x = motion(3, 5, 4);
        let set = FrameSet::prepare(x.view(), &[5; 3], &Metric::Procrustes, "x").unwrap();
        let control = Control::new();
        control.cancel();
        let result = pairwise(&set, &EngineOptions::new(Metric::Procrustes), &control);
        assert_eq!(result.unwrap_err(), GkdError::Cancelled);
    }

    #[test]
    fn rejects_bad_options() {
        let x = motion(2, 5, 4);
        let set = FrameSet::prepare(x.view(), &[5; 2], &Metric::Procrustes, "x").unwrap();
        let options = EngineOptions {
            missing_cost: Some(-1.0),
            ..EngineOptions::new(Metric::Procrustes)
        };
        let err = pairwise(&set, &options, &Control::new()).unwrap_err();
        assert!(err.to_string().contains("missing_cost"));
        assert!(with_threads(Some(0), || ()).is_err());
        let other = motion(2, 5, 3);
        let other = FrameSet::prepare(other.view(), &[5; 2], &Metric::Procrustes, "b").unwrap();
        let err = cross(
            &set,
            &other,
            &EngineOptions::new(Metric::Procrustes),
            &Control::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("same number of landmarks"));
    }
}
