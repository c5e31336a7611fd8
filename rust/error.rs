//! The one error type of the engine. Python-free: `python.rs` maps it to exceptions.

use thiserror::Error;

/// Everything that can go wrong in the engine, each variant naming what is wrong.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum GkdError {
    /// A shape, length, parameter or value the caller controls is unusable.
    #[error("{0}")]
    InvalidInput(String),
    /// A value that must be finite (a coordinate of a frame that is read) is NaN or infinite.
    #[error("{array}: sequence {sequence}, frame {frame} contains NaN or inf")]
    NonFinite {
        array: String,
        sequence: usize,
        frame: usize,
    },
    /// The run was cancelled through [`crate::Control::cancel`].
    #[error("cancelled")]
    Cancelled,
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, GkdError>;

/// Builds an [`GkdError::InvalidInput`] from a formatted message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::error::GkdError::InvalidInput(format!($($arg)*))
    };
}
pub(crate) use invalid;
