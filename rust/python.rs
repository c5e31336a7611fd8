//! The only file that knows about Python: thin wrappers over the pure engine.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use ndarray::ArrayView4;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray4};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::dtw::DtwOptions;
use crate::error::{GkdError, Result};
use crate::frames::FrameSet;
use crate::metric::{HandParams, Metric};
use crate::pairs::{self, Control, EngineOptions};

/// How often the waiting thread looks at Ctrl-C and reports progress.
const POLL: Duration = Duration::from_millis(50);

impl From<GkdError> for PyErr {
    fn from(e: GkdError) -> PyErr {
        match e {
            GkdError::Cancelled => PyKeyboardInterrupt::new_err("distance computation cancelled"),
            other => PyValueError::new_err(other.to_string()),
        }
    }
}

/// The metric by name, with the hand parameters as (σ1, σ2, σ3, δ).
fn parse_metric(name: &str, hand: Option<(f64, f64, f64, f64)>) -> PyResult<Metric> {
    let hand = hand.map_or_else(HandParams::default, |(s1, s2, s3, d)| HandParams {
        sigma_shape: s1,
        sigma_angle: s2,
        sigma_wrist: s3,
        wrist_margin: d,
    });
    Ok(Metric::parse(name, hand)?)
}

/// An input array, borrowed read-only for the whole call, in either float type.
enum Borrowed<'py> {
    F32(PyReadonlyArray4<'py, f32>),
    F64(PyReadonlyArray4<'py, f64>),
}

impl<'py> Borrowed<'py> {
    fn new(array: &Bound<'py, PyAny>, name: &str) -> PyResult<Self> {
        if let Ok(x) = array.extract::<PyReadonlyArray4<'py, f64>>() {
            Ok(Borrowed::F64(x))
        } else if let Ok(x) = array.extract::<PyReadonlyArray4<'py, f32>>() {
            Ok(Borrowed::F32(x))
        } else {
            Err(PyTypeError::new_err(format!(
                "{name} must be a 4-D float32 or float64 NumPy array"
            )))
        }
    }

    fn view(&self) -> Input<'_> {
        match self {
            Borrowed::F32(x) => Input::F32(x.as_array()),
            Borrowed::F64(x) => Input::F64(x.as_array()),
        }
    }
}

/// A view of a borrowed input, which the engine's threads may read.
enum Input<'a> {
    F32(ArrayView4<'a, f32>),
    F64(ArrayView4<'a, f64>),
}

impl Input<'_> {
    fn prepare(&self, lengths: &[usize], metric: &Metric, name: &str) -> Result<FrameSet> {
        match self {
            Input::F32(x) => FrameSet::prepare(x.view(), lengths, metric, name),
            Input::F64(x) => FrameSet::prepare(x.view(), lengths, metric, name),
        }
    }
}

/// Lengths as the engine takes them; a negative one becomes 0, which the engine rejects.
fn lengths_of(lengths: &PyReadonlyArray1<'_, i64>) -> Vec<usize> {
    lengths
        .as_array()
        .iter()
        .map(|&len| usize::try_from(len).unwrap_or(0))
        .collect()
}

#[pyfunction]
#[pyo3(signature = (
    a, lengths_a, b=None, lengths_b=None, *, metric="procrustes", band=None, normalize=false,
    threads=None, missing_cost=None, hand=None, progress=None, names=None
))]
#[allow(clippy::too_many_arguments)]
fn distance_matrix<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    lengths_a: PyReadonlyArray1<'py, i64>,
    b: Option<&Bound<'py, PyAny>>,
    lengths_b: Option<PyReadonlyArray1<'py, i64>>,
    metric: &str,
    band: Option<usize>,
    normalize: bool,
    threads: Option<usize>,
    missing_cost: Option<f64>,
    hand: Option<(f64, f64, f64, f64)>,
    progress: Option<Bound<'py, PyAny>>,
    names: Option<(String, String)>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let names = names.unwrap_or_else(|| ("a".into(), "b".into()));
    let metric = parse_metric(metric, hand)?;
    let options = EngineOptions {
        metric,
        dtw: DtwOptions { band, normalize },
        missing_cost,
    };
    let a = Borrowed::new(a, &names.0)?;
    let b = match (b, &lengths_b) {
        (Some(b), Some(lengths_b)) => Some((Borrowed::new(b, &names.1)?, lengths_of(lengths_b))),
        (None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "b and lengths_b must be given together",
            ))
        }
    };
    let lengths_a = lengths_of(&lengths_a);
    let total = match &b {
        Some((_, lengths_b)) => pairs::cross_pair_count(lengths_a.len(), lengths_b.len()),
        None => pairs::pairwise_pair_count(lengths_a.len(), &metric),
    };

    let control = Control::new();
    let (a, b) = (a.view(), b.as_ref().map(|(b, lengths)| (b.view(), lengths)));
    let (a, b, lengths_a, names, control) = (&a, &b, &lengths_a, &names, &control);
    let result = std::thread::scope(|scope| -> PyResult<_> {
        let (done, mut finished) = std::sync::mpsc::channel();
        scope.spawn(move || {
            // One pool for the whole call: normalising the inputs and the pairs.
            let outcome = pairs::with_threads(threads, || {
                let rows = a.prepare(lengths_a, &metric, &names.0)?;
                match b {
                    Some((b, lengths_b)) => {
                        let columns = b.prepare(lengths_b, &metric, &names.1)?;
                        pairs::cross(&rows, &columns, &options, control)
                    }
                    None => pairs::pairwise(&rows, &options, control),
                }
            });
            // The receiver is gone only if the caller already gave up.
            let _ = done.send(outcome);
        });
        // Wait in short steps with the GIL released; between steps, honour Ctrl-C and
        // report progress. Python is never called from the rayon workers.
        loop {
            // The receiver is not Sync: move it into the GIL-free closure and back.
            let (outcome, receiver) = py.detach(move || (finished.recv_timeout(POLL), finished));
            finished = receiver;
            match outcome {
                Ok(outcome) => {
                    if let Some(callback) = &progress {
                        callback.call1((control.pairs_done(), total))?;
                    }
                    return Ok(outcome??);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err(
                        "the distance computation stopped unexpectedly",
                    ))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let check = py.check_signals().and_then(|()| match &progress {
                Some(callback) => callback.call1((control.pairs_done(), total)).map(drop),
                None => Ok(()),
            });
            if let Err(e) = check {
                // Stop the workers; the scope joins them before the error reaches Python.
                control.cancel();
                return Err(e);
            }
        }
    })?;
    Ok(result.into_pyarray(py))
}

/// Name of the pair kernel chosen for this CPU.
#[pyfunction]
fn kernel_name() -> &'static str {
    crate::dtw::kernel_name()
}

/// Largest frame cost of `metric` between present frames: the default missing-frame cost.
#[pyfunction]
#[pyo3(signature = (metric, n_landmarks, hand=None))]
fn max_frame_cost(
    metric: &str,
    n_landmarks: usize,
    hand: Option<(f64, f64, f64, f64)>,
) -> PyResult<f64> {
    let metric = parse_metric(metric, hand)?;
    let shape_landmarks = if matches!(metric, Metric::Hand(_)) {
        n_landmarks.saturating_sub(1)
    } else {
        n_landmarks
    };
    Ok(metric.max_cost(shape_landmarks))
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(distance_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_name, m)?)?;
    m.add_function(wrap_pyfunction!(max_frame_cost, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
