//! Frames normalised once per sequence, laid out for the pair kernel.
//!
//! Each frame is reduced to the shape the metric compares (centred and unit-norm, or for
//! `hand` wrist-relative and unit-norm). Frames are stored in blocks of [`LANES`] consecutive
//! frames, `[landmark][coordinate][lane]`, so that one row frame meets a whole block of
//! column frames in vector registers.

use std::mem::MaybeUninit;

use ndarray::{ArrayView3, ArrayView4, Axis};
use rayon::prelude::*;

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
        T: Copy + Into<f64> + Sync,
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
        let first_block = running_starts(lengths.iter().map(|len| len.div_ceil(LANES)));
        let first_frame = running_starts(lengths.iter().copied());
        let total_blocks: usize = lengths.iter().map(|len| len.div_ceil(LANES)).sum();
        let total_frames: usize = lengths.iter().sum();
        let total_values = total_blocks * block_len;
        let mut blocks = try_with_capacity(total_values, "normalised frames")?;
        let mut missing = vec![false; total_frames];
        let mut anchors = vec![[0.0; 3]; if hand { total_frames } else { 0 }];

        // Each sequence owns disjoint slices of the three buffers, so the sequences are
        // normalised in parallel: serial, this step cost about 7 % of a SIGNUM-sized block.
        // The frames are written straight into fresh memory, not zeroed first: zeroing
        // hundreds of megabytes on one thread cost as much as the normalisation itself.
        let mut parts = Vec::with_capacity(n);
        let mut blocks_left = &mut blocks.spare_capacity_mut()[..total_values];
        let mut missing_left = &mut missing[..];
        let mut anchors_left = &mut anchors[..];
        for &len in lengths {
            let (seq_blocks, rest) = blocks_left.split_at_mut(len.div_ceil(LANES) * block_len);
            blocks_left = rest;
            let (seq_missing, rest) = missing_left.split_at_mut(len);
            missing_left = rest;
            let (seq_anchors, rest) = anchors_left.split_at_mut(if hand { len } else { 0 });
            anchors_left = rest;
            parts.push((seq_blocks, seq_missing, seq_anchors));
        }
        let filler = filler_shape(shape_landmarks);
        let first_bad = parts
            .into_par_iter()
            .enumerate()
            .map_init(
                || FrameScratch::new(n_landmarks),
                |scratch, (i, (seq_blocks, seq_missing, seq_anchors))| {
                    let frames = x.index_axis(Axis(0), i);
                    let written = Written {
                        blocks: seq_blocks,
                        missing: seq_missing,
                        anchors: seq_anchors,
                    };
                    normalise_sequence(frames, lengths[i], hand, &filler, scratch, written)
                        .err()
                        .map(|frame| (i, frame))
                },
            )
            .flatten()
            .min();
        if let Some((sequence, frame)) = first_bad {
            return Err(GkdError::NonFinite {
                array: name.to_string(),
                sequence,
                frame,
            });
        }
        // SAFETY: the sequences' slices tile the first `total_values` values, and without an
        // error `normalise_sequence` wrote every value of its slice (every lane of every
        // block, padding lanes included).
        unsafe { blocks.set_len(total_values) };
        Ok(FrameSet {
            shape_landmarks,
            lengths: lengths.to_vec(),
            first_block,
            first_frame,
            blocks,
            missing,
            anchors,
        })
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

/// Where each value starts when values of the given sizes are laid end to end.
fn running_starts(sizes: impl Iterator<Item = usize>) -> Vec<usize> {
    sizes
        .scan(0, |next, size| {
            let start = *next;
            *next += size;
            Some(start)
        })
        .collect()
}

/// Per-thread buffers for one frame.
struct FrameScratch {
    raw: Vec<[f64; 3]>,
    shape: Vec<f64>,
}

impl FrameScratch {
    fn new(n_landmarks: usize) -> Self {
        FrameScratch {
            raw: Vec::with_capacity(n_landmarks),
            shape: Vec::with_capacity(3 * n_landmarks),
        }
    }
}

/// One sequence's share of a [`FrameSet`]'s buffers.
struct Written<'a> {
    blocks: &'a mut [MaybeUninit<f64>],
    missing: &'a mut [bool],
    anchors: &'a mut [[f64; 3]],
}

/// Normalises the first `len` frames of one sequence (T, L, 3) into `out`; on a NaN or
/// infinite coordinate, returns the frame's index.
fn normalise_sequence<T>(
    frames: ArrayView3<T>,
    len: usize,
    hand: bool,
    filler: &[f64],
    scratch: &mut FrameScratch,
    out: Written<'_>,
) -> std::result::Result<(), usize>
where
    T: Copy + Into<f64>,
{
    let block_len = filler.len() * LANES;
    let FrameScratch { raw, shape } = scratch;
    shape.resize(filler.len(), 0.0);
    for t in 0..len.div_ceil(LANES) * LANES {
        // Lanes past the end repeat a valid shape so the kernel never meets a degenerate
        // one; their costs are never used.
        if t < len {
            raw.clear();
            let frame = frames.index_axis(Axis(0), t);
            // Inputs from Python are C-contiguous: read them as a plain slice.
            match frame.as_slice() {
                Some(values) => raw.extend(
                    values
                        .chunks_exact(3)
                        .map(|p| [p[0].into(), p[1].into(), p[2].into()]),
                ),
                None => raw.extend(
                    frame
                        .outer_iter()
                        .map(|p| [p[0].into(), p[1].into(), p[2].into()]),
                ),
            }
            if !raw.iter().flatten().all(|v| v.is_finite()) {
                return Err(t);
            }
            let is_missing = !normalise_frame(raw, hand, shape);
            if is_missing {
                shape.copy_from_slice(filler);
            }
            out.missing[t] = is_missing;
            if hand {
                out.anchors[t] = raw[0];
            }
        }
        let block = &mut out.blocks[(t / LANES) * block_len..][..block_len];
        let lane = t % LANES;
        for (k, &value) in shape.iter().enumerate() {
            block[k * LANES + lane].write(value);
        }
    }
    Ok(())
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

/// An empty buffer with room for `len` values, whose allocation failure is an error, not
/// an abort.
fn try_with_capacity(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| out_of_memory(len, what))?;
    Ok(v)
}

fn out_of_memory(len: usize, what: &str) -> GkdError {
    invalid!(
        "not enough memory for {what}: {:.1} GiB needed",
        len as f64 * 8.0 / (1u64 << 30) as f64
    )
}

/// A zeroed buffer whose allocation failure is an error, not an abort.
pub(crate) fn try_zeroed(len: usize, what: &str) -> Result<Vec<f64>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| out_of_memory(len, what))?;
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
    fn thread_count_does_not_change_the_normalised_frames() {
        let mut x = ramp(37, 13, 6);
        x.slice_mut(ndarray::s![5, 2, .., ..]).fill(0.0);
        let lengths: Vec<usize> = (0..37).map(|i| 1 + (i * 5) % 13).collect();
        for metric in [Metric::Procrustes, Metric::Hand(HandParams::default())] {
            let prepare = |threads| {
                crate::pairs::with_threads(Some(threads), || {
                    FrameSet::prepare(x.view(), &lengths, &metric, "x").unwrap()
                })
                .unwrap()
            };
            let (one, four) = (prepare(1), prepare(4));
            assert_eq!(one.blocks, four.blocks);
            assert_eq!(one.missing, four.missing);
            assert_eq!(one.anchors, four.anchors);
            assert_eq!(one.first_block, four.first_block);
            assert_eq!(one.first_frame, four.first_frame);
            assert!(one.sequence(5).missing[2]);
        }
    }

    #[test]
    fn a_strided_view_gives_the_same_frames_as_a_contiguous_copy() {
        let x = ramp(4, 9, 6);
        let view = x.slice(ndarray::s![.., ..;2, ..;2, ..]);
        assert!(!view.is_standard_layout());
        let copy = view.to_owned();
        let strided = FrameSet::prepare(view, &[5, 3, 5, 1], &Metric::Procrustes, "x").unwrap();
        let plain =
            FrameSet::prepare(copy.view(), &[5, 3, 5, 1], &Metric::Procrustes, "x").unwrap();
        assert_eq!(strided.blocks, plain.blocks);
        assert_eq!(strided.missing, plain.missing);
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
        // With several bad sequences, the error names the first, whichever thread found it.
        let mut many = ramp(40, 6, 3);
        many[[31, 1, 2, 0]] = f64::INFINITY;
        many[[7, 4, 0, 1]] = f64::NAN;
        many[[7, 5, 1, 1]] = f64::NAN;
        let lengths = [6; 40];
        for threads in [1, 4] {
            let err = crate::pairs::with_threads(Some(threads), || {
                FrameSet::prepare(many.view(), &lengths, &Metric::Procrustes, "b")
            })
            .unwrap()
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "b: sequence 7, frame 4 contains NaN or inf"
            );
        }
        let two = ramp(1, 2, 2);
        let err = FrameSet::prepare(two.view(), &[2], &Metric::Procrustes, "b").unwrap_err();
        assert!(err.to_string().contains("at least 3 landmarks"), "{err}");
    }
}
