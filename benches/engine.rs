//! Criterion benchmarks of the engine: one frame against a sequence (the frame-cost kernel),
//! one DTW pair, and all pairs of 64 sequences of 80 frames × 21 landmarks (a MediaPipe hand)
//! on 1 and 2 threads; and the normalisation of 1,000 such sequences, which every call repeats
//! for its inputs. Throughput is in frame pairs (frames for `prepare`), so criterion reports
//! frame pairs per second; `benches/compare.py` turns the same work into ns per frame pair
//! per core.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use gkd_core::{
    pair_distance, pairwise, with_threads, Control, DtwOptions, EngineOptions, FrameSet,
    HandParams, Metric, MissingCost, PairOptions, Scratch,
};
use ndarray::Array4;

const SEQUENCES: usize = 64;
const FRAMES: usize = 80;
const LANDMARKS: usize = 21;

/// Hand-like motion: a fixed skeleton, per-sequence pose offsets, smooth per-frame wobble.
fn hands(n: usize) -> Array4<f64> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let base: Vec<f64> = (0..LANDMARKS * 3).map(|_| noise()).collect();
    let pose: Vec<f64> = (0..n * LANDMARKS * 3).map(|_| 0.3 * noise()).collect();
    Array4::from_shape_fn((n, FRAMES, LANDMARKS, 3), |(i, t, l, c)| {
        let k = l * 3 + c;
        base[k] + pose[i * LANDMARKS * 3 + k] * (t as f64 * 0.08 + i as f64).sin()
    })
}

fn options(metric: Metric) -> PairOptions {
    PairOptions {
        metric,
        missing: MissingCost::Constant(metric.max_cost(LANDMARKS)),
        dtw: DtwOptions::default(),
    }
}

fn metrics() -> [Metric; 2] {
    [Metric::Procrustes, Metric::Hand(HandParams::default())]
}

fn frame_cost(c: &mut Criterion) {
    let x = hands(2);
    let mut group = c.benchmark_group("frame_cost_row");
    group.throughput(Throughput::Elements(FRAMES as u64));
    for metric in metrics() {
        let set = FrameSet::prepare(x.view(), &[1, FRAMES], &metric, "x").unwrap();
        let (a, b) = (set.sequence(0), set.sequence(1));
        let mut scratch = Scratch::default();
        let opts = options(metric);
        group.bench_function(metric.name(), |bench| {
            bench.iter(|| pair_distance(black_box(&a), black_box(&b), &opts, &mut scratch))
        });
    }
    group.finish();
}

fn dtw_pair(c: &mut Criterion) {
    let x = hands(2);
    let mut group = c.benchmark_group("dtw_pair");
    group.throughput(Throughput::Elements((FRAMES * FRAMES) as u64));
    for metric in metrics() {
        let set = FrameSet::prepare(x.view(), &[FRAMES, FRAMES], &metric, "x").unwrap();
        let (a, b) = (set.sequence(0), set.sequence(1));
        let mut scratch = Scratch::default();
        for band in [None, Some(8)] {
            let opts = PairOptions {
                dtw: DtwOptions {
                    band,
                    normalize: false,
                },
                ..options(metric)
            };
            let id = BenchmarkId::new(metric.name(), format!("band={band:?}"));
            group.bench_function(id, |bench| {
                bench.iter(|| pair_distance(black_box(&a), black_box(&b), &opts, &mut scratch))
            });
        }
    }
    group.finish();
}

fn all_pairs(c: &mut Criterion) {
    let x = hands(SEQUENCES);
    let lengths = [FRAMES; SEQUENCES];
    let pairs = SEQUENCES * (SEQUENCES - 1) / 2;
    let mut group = c.benchmark_group("all_pairs_64x80x21");
    group.sample_size(10);
    group.throughput(Throughput::Elements((pairs * FRAMES * FRAMES) as u64));
    for metric in metrics() {
        let set = FrameSet::prepare(x.view(), &lengths, &metric, "x").unwrap();
        let opts = EngineOptions::new(metric);
        on_1_and_2_threads(&mut group, metric, || {
            pairwise(&set, &opts, &Control::new())
        });
    }
    group.finish();
}

/// Normalising the inputs is not free: a call against 6,300 SIGNUM-sized references
/// prepares half a million frames before the first pair.
fn prepare(c: &mut Criterion) {
    const PREPARED: usize = 1000;
    let x = hands(PREPARED);
    let lengths = [FRAMES; PREPARED];
    let mut group = c.benchmark_group("prepare_1000x80x21");
    group.sample_size(20);
    group.throughput(Throughput::Elements((PREPARED * FRAMES) as u64));
    for metric in metrics() {
        on_1_and_2_threads(&mut group, metric, || {
            FrameSet::prepare(x.view(), &lengths, &metric, "x")
        });
    }
    group.finish();
}

/// Benchmarks `work` on a pool of 1 and of 2 threads, as `metric/threads`.
fn on_1_and_2_threads<R: Send>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    metric: Metric,
    work: impl Fn() -> R + Sync,
) {
    for threads in [1, 2] {
        group.bench_with_input(
            BenchmarkId::new(metric.name(), threads),
            &threads,
            |bench, &threads| bench.iter(|| with_threads(Some(threads), &work)),
        );
    }
}

criterion_group!(benches, frame_cost, dtw_pair, all_pairs, prepare);
criterion_main!(benches);
