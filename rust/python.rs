//! The only file that knows about Python: thin wrappers over the pure engine.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray4};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::dtw::DtwOptions;
use crate::error::GkdError;
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

fn prepare(
    py: Python<'_>,
    array: &Bound<'_, PyAny>,
    lengths: &PyReadonlyArray1<'_, i64>,
    metric: &Metric,
    name: &str,
    threads: Option<usize>,
) -> PyResult<FrameSet> {
    let lengths: Vec<usize> = lengths
        .as_array()
        .iter()
        .map(|&len| usize::try_from(len).unwrap_or(0))
        .collect();
    if let Ok(x) = array.extract::<PyReadonlyArray4<'_, f64>>() {
        let view = x.as_array();
        Ok(py.detach(|| {
            pairs::with_threads(threads, || FrameSet::prepare(view, &lengths, metric, name))
        })??)
    } else if let Ok(x) = array.extract::<PyReadonlyArray4<'_, f32>>() {
        let view = x.as_array();
        Ok(py.detach(|| {
            pairs::with_threads(threads, || FrameSet::prepare(view, &lengths, metric, name))
        })??)
    } else {
        Err(PyTypeError::new_err(format!(
            "{name} must be a 4-D float32 or float64 NumPy array"
        )))
    }
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
    let rows = prepare(py, a, &lengths_a, &metric, &names.0, threads)?;
    let columns = match (b, &lengths_b) {
        (Some(b), Some(lengths_b)) => Some(prepare(py, b, lengths_b, &metric, &names.1, threads)?),
        (None, None) => None,
        _ => {
            return Err(PyValueError::new_err(
                "b and lengths_b must be given together",
            ))
        }
    };
    let total = match &columns {
        Some(c) => pairs::cross_pair_count(rows.len(), c.len()),
        None => pairs::pairwise_pair_count(rows.len(), &metric),
    };

    let control = Control::new();
    let (rows, columns, control) = (&rows, columns.as_ref(), &control);
    let result = std::thread::scope(|scope| -> PyResult<_> {
        let (done, mut finished) = std::sync::mpsc::channel();
        scope.spawn(move || {
            let outcome = pairs::with_threads(threads, || match columns {
                Some(c) => pairs::cross(rows, c, &options, control),
                None => pairs::pairwise(rows, &options, control),
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
