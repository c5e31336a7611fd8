//! Frames normalised once per sequence, laid out for the pair kernel.
//!
//! Each frame is reduced to the shape the metric compares (centred and unit-norm, or for
//! `hand` wrist-relative and unit-norm). Frames are stored in blocks of [`LANES`] consecutive
//! frames, `[landmark][coordinate][lane]`, so that one row frame meets a whole block of
//! column frames in vector registers.

use ndarray::ArrayView4;

use crate::error::{invalid, GkdError, Result};
use crate::metric::Metric;

/// Frames per block: the kernel's vector width in f64 lanes.
pub const LANES: usize = 8;

/// A frame whose shape norm is at most this times (1 + its raw norm) is degenerate
/// ("missing"): all its landmarks coincide, as in MediaPipe's all-zero undetected hand.
const DEGENERATE_RELATIVE_NORM: f64 = 1e-9;

/// Normalised frames of a set of sequences.
#[derive(Debug, Clone)]
pub struct FrameSet {
    shape_landmarks: usize,
    lengths: Vec<usize>,
    first_block: Vec<usize>,
    first_frame: Vec<usize>,
    blocks: Vec<f64>,
    missing: Vec<bool>,
    anchors: Vec<[f64; 3]>,
}

/// One sequence of a [`FrameSet`].
#[derive(Debug, Clone, Copy)]
pub struct Sequence<'a> {
    /// Number of valid frames.
    pub len: usize,
    /// Landmarks in each normalised shape.
    pub shape_landmarks: usize,
    /// `ceil(len / LANES)` blocks of `3 · shape_landmarks · LANES` values.
    pub blocks: &'a [f64],
    /// Per frame: degenerate, compared by the missing-frame rule.
    pub missing: &'a [bool],
    /// Per frame: raw wrist coordinates (`hand` only; empty otherwise).
    pub anchors: &'a [[f64; 3]],
    /// Whether any frame is missing.
    pub any_missing: bool,
}

impl Sequence<'_> {
    /// Values in one block.
    pub fn block_len(&self) -> usize {
        3 * self.shape_landmarks * LANES
    }

    /// Copies frame `t` into `out` as `[landmark][coordinate]`.
    pub fn gather_frame(&self, t: usize, out: &mut [f64]) {
        let block = &self.blocks[(t / LANES) * self.block_len()..][..self.block_len()];
        let lane = t % LANES;
        for (k, value) in out.iter_mut().enumerate().take(3 * self.shape_landmarks) {
            *value = block[k * LANES + lane];
        }
    }
}

impl FrameSet {
    /// Normalises the first `lengths[i]` frames of each sequence of `x` (N, T, L, 3).
    ///
    /// `name` names the array in error messages. Frames past a sequence's length are not read.
    pub fn prepare<T>(
        x: ArrayView4<T>,
        lengths: &[usize],
        metric: &Metric,
        name: &str,
    ) -> Result<Self>
    where
        T: Copy + Into<f64>,
    {
        let (n, t_max, n_landmarks, n_coords) = x.dim();
        if n_coords != 3 {
            return Err(invalid!(
                "{name}: the last axis must hold 3 coordinates, got {n_coords}"
            ));
        }
        if n_landmarks < metric.min_landmarks() {
            return Err(invalid!(
                "{name}: metric {:?} needs at least {} landmarks per frame, got {n_landmarks}",
                metric.name(),
                metric.min_landmarks()
            ));
        }
        if lengths.len() != n {
            return Err(invalid!(
                "lengths for {name} must have one entry per sequence ({n}), got {}",
                lengths.len()
            ));
        }
        if let Some((i, &len)) = lengths
            .iter()
            .enumerate()
            .find(|(_, &len)| len < 1 || len > t_max)
        {
            return Err(invalid!(
                "lengths for {name}: sequence {i} has length {len}, outside [1, {t_max}]"
            ));
        }

        let hand = matches!(metric, Metric::Hand(_));
        let shape_landmarks = if hand { n_landmarks - 1 } else { n_landmarks };
        let block_len = 3 * shape_landmarks * LANES;
        let total_frames: usize = lengths.iter().sum();
        let total_blocks: usize = lengths.iter().map(|len| len.div_ceil(LANES)).sum();

        let mut set = FrameSet {
            shape_landmarks,
            lengths: lengths.to_vec(),
            first_block: Vec::with_capacity(n),
            first_frame: Vec::with_capacity(n),
            blocks: try_zeroed(total_blocks * block_len, "normalised frames")?,
            missing: Vec::with_capacity(total_frames),
            anchors: Vec::with_capacity(if hand { total_frames } else { 0 }),
        };
        let filler = filler_shape(shape_landmarks);
        let mut shape = vec![0.0; 3 * shape_landmarks];
        let mut raw: Vec<[f64; 3]> = Vec::with_capacity(n_landmarks);
        let (mut block_index, mut frame_index) = (0, 0);
        for (i, &len) in lengths.iter().enumerate() {
            set.first_block.push(block_index);
            set.first_frame.push(frame_index);
            for t in 0..len.div_ceil(LANES) * LANES {
                // Lanes past the end repeat a valid shape so the kernel never meets a
                // degenerate one; their costs are never used.
                if t < len {
                    let frame = x.slice(ndarray::s![i, t, .., ..]);
                    raw.clear();
                    for landmark in frame.outer_iter() {
                        let p = [landmark[0].into(), landmark[1].into(), landmark[2].into()];
                        if p.iter().any(|v: &f64| !v.is_finite()) {
                            return Err(GkdError::NonFinite {
                                array: name.to_string(),
                                sequence: i,
                                frame: t,
                            });
                        }
                        raw.push(p);
                    }
                    let is_missing = !normalise_frame(&raw, hand, &mut shape);
                    if is_missing {
                        shape.copy_from_slice(&filler);
                    }
                    set.missing.push(is_missing);
                    if hand {
                        set.anchors.push(raw[0]);
                    }
                }
                let block = &mut set.blocks[(block_index + t / LANES) * block_len..][..block_len];
                let lane = t % LANES;
                for (k, &value) in shape.iter().enumerate() {
                    block[k * LANES + lane] = value;
                }
            }
            block_index += len.div_ceil(LANES);
            frame_index += len;
        }
        Ok(set)
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether the set holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }

    /// Landmarks in each normalised shape.
    pub fn shape_landmarks(&self) -> usize {
        self.shape_landmarks
    }

    /// Valid frames of every sequence.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// Sequence `i`.
    pub fn sequence(&self, i: usize) -> Sequence<'_> {
        let len = self.lengths[i];
        let block_len = 3 * self.shape_landmarks * LANES;
        let first_frame = self.first_frame[i];
        let missing = &self.missing[first_frame..first_frame + len];
        Sequence {
            len,
            shape_landmarks: self.shape_landmarks,
            blocks: &self.blocks[self.first_block[i] * block_len..]
                [..len.div_ceil(LANES) * block_len],
            missing,
            any_missing: missing.contains(&true),
            anchors: if self.anchors.is_empty() {
                &[]
            } else {
                &self.anchors[first_frame..first_frame + len]
            },
        }
    }
}

/// Writes the normalised shape of `raw` into `shape`; false if the frame is degenerate.
///
/// Procrustes metrics centre on the centroid; `hand` takes landmarks 1.. relative to the
/// wrist (landmark 0). Both then scale to unit Frobenius norm.
fn normalise_frame(raw: &[[f64; 3]], hand: bool, shape: &mut [f64]) -> bool {
    let origin = if hand {
        raw[0]
    } else {
        let mut centroid = [0.0; 3];
        for p in raw {
            for c in 0..3 {
                centroid[c] += p[c];
            }
        }
        centroid.map(|v| v / raw.len() as f64)
    };
    let points = if hand { &raw[1..] } else { raw };
    let mut norm2 = 0.0;
    let mut raw_norm2 = 0.0;
    for (l, p) in points.iter().enumerate() {
        for c in 0..3 {
            let v = p[c] - origin[c];
            shape[3 * l + c] = v;
            norm2 += v * v;
            raw_norm2 += p[c] * p[c];
        }
    }
    let norm = norm2.sqrt();
    if norm <= DEGENERATE_RELATIVE_NORM * (1.0 + raw_norm2.sqrt()) {
        return false;
    }
    shape.iter_mut().for_each(|v| *v /= norm);
    true
}

/// A fixed, well-conditioned unit shape stored in place of degenerate frames.
fn filler_shape(shape_landmarks: usize) -> Vec<f64> {
    let raw: Vec<[f64; 3]> = (0..shape_landmarks)
        .map(|l| {
            let l = l as f64;
            [
                (1.3 * l).cos(),
                (2.1 * l + 0.4).sin(),
                0.5 * l - 0.2 * l * l,
            ]
        })
        .collect();
    let mut shape = vec![0.0; 3 * shape_landmarks];
    let ok = normalise_frame(&raw, false, &mut shape);
    debug_assert!(ok, "filler shape must not be degenerate");
    shape
}

/// A zeroed buffer whose allocation failure is an error, not an abort.
pub(crate) fn try_zeroed(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        invalid!(
            "not enough memory for {what}: {:.1} GiB needed",
            len as f64 * 8.0 / (1u64 << 30) as f64
        )
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::HandParams;
    use ndarray::Array4;

    fn ramp(n: usize, t: usize, l: usize) -> Array4<f64> {
        Array4::from_shape_fn((n, t, l, 3), |(i, f, k, c)| {
            ((i * 31 + f * 7 + k * 3 + c) as f64 * 0.37).sin()
        })
    }

    #[test]
    fn frames_are_centred_and_unit_norm() {
        let x = ramp(2, 11, 5);
        let set = FrameSet::prepare(x.view(), &[11, 4], &Metric::Procrustes, "x").unwrap();
        let mut frame = vec![0.0; 15];
        for i in 0..2 {
            let seq = set.sequence(i);
            for t in 0..seq.len {
                seq.gather_frame(t, &mut frame);
                let norm: f64 = frame.iter().map(|v| v * v).sum();
                assert!((norm - 1.0).abs() < 1e-12);
                for c in 0..3 {
                    let mean: f64 = (0..5).map(|l| frame[3 * l + c]).sum();
                    assert!(mean.abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn degenerate_frames_are_missing() {
        let mut x = ramp(1, 3, 4);
        x.slice_mut(ndarray::s![0, 1, .., ..]).fill(0.0);
        x.slice_mut(ndarray::s![0, 2, .., ..]).fill(2.5);
        let set = FrameSet::prepare(x.view(), &[3], &Metric::Procrustes, "x").unwrap();
        assert_eq!(set.sequence(0).missing, &[false, true, true]);
        let hand = Metric::Hand(HandParams::default());
        let set = FrameSet::prepare(x.view(), &[3], &hand, "x").unwrap();
        assert_eq!(set.sequence(0).anchors[2], [2.5; 3]);
        assert_eq!(set.sequence(0).missing, &[false, true, true]);
    }

    #[test]
    fn rejects_bad_lengths_nan_and_few_landmarks() {
        let mut x = ramp(2, 4, 3);
        let err = FrameSet::prepare(x.view(), &[4, 5], &Metric::Procrustes, "a").unwrap_err();
        assert!(err.to_string().contains("sequence 1 has length 5"), "{err}");
        x[[1, 3, 0, 2]] = f64::NAN;
        // The NaN is past sequence 1's length, so it is never read.
        assert!(FrameSet::prepare(x.view(), &[4, 3], &Metric::Procrustes, "a").is_ok());
        let err = FrameSet::prepare(x.view(), &[4, 4], &Metric::Procrustes, "a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a: sequence 1, frame 3 contains NaN or inf"
        );
        let two = ramp(1, 2, 2);
        let err = FrameSet::prepare(two.view(), &[2], &Metric::Procrustes, "b").unwrap_err();
        assert!(err.to_string().contains("at least 3 landmarks"), "{err}");
    }
}
