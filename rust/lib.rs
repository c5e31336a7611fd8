//! # gkd-core
//!
//! Procrustes-DTW distances between motion sequences (T frames of L 3-D landmarks), the
//! engine of the `gkd` Python package.
//!
//! Each pair of frames is compared after removing translation, scale and rotation (the
//! optimal proper rotation, in closed form); dynamic time warping aligns the sequences in
//! time; rayon spreads the pairs over all cores.
//!
//! ```
//! use gkd_core::{pairwise, Control, EngineOptions, FrameSet, Metric};
//! use ndarray::Array4;
//!
//! let x = Array4::<f64>::from_shape_fn((3, 10, 5, 3), |(i, t, l, c)| ((i + t + 2 * l + c) as f64).sin());
//! let metric = Metric::Procrustes;
//! let frames = FrameSet::prepare(x.view(), &[10, 7, 4], &metric, "x").unwrap();
//! let d = pairwise(&frames, &EngineOptions::new(metric), &Control::new()).unwrap();
//! assert_eq!(d[[0, 1]], d[[1, 0]]);
//! ```

pub mod dtw;
pub mod error;
pub mod frames;
pub mod metric;
pub mod pairs;
pub mod procrustes;

#[cfg(feature = "python")]
mod python;

pub use dtw::{kernel_name, pair_distance, DtwOptions, PairOptions, Scratch};
pub use error::{GkdError, Result};
pub use frames::{FrameSet, Sequence, LANES};
pub use metric::{HandParams, Metric, MissingCost, METRIC_NAMES};
pub use pairs::{
    cross, cross_pair_count, pairwise, pairwise_pair_count, with_threads, Control, EngineOptions,
};
