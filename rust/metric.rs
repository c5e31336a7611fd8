//! Frame-cost metrics: what is compared once translation, scale and rotation are removed.

use crate::error::{invalid, Result};

/// Parameters of the paper's hand cost `f1/σ1 + f2/σ2 + max(f3 − δ, 0)²/σ3`.
///
/// The defaults are the values the paper fitted on SIGNUM.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HandParams {
    /// σ1, divides the Frobenius residual after the optimal rotation.
    pub sigma_shape: f64,
    /// σ2, divides the squared angle (radians²) of the optimal rotation.
    pub sigma_angle: f64,
    /// σ3, divides the squared wrist distance beyond the margin.
    pub sigma_wrist: f64,
    /// δ, the wrist distance (raw coordinates) that costs nothing.
    pub wrist_margin: f64,
}

impl Default for HandParams {
    fn default() -> Self {
        Self {
            sigma_shape: 0.511_075_097_172_148_3,
            sigma_angle: 1.696_413_195_666_040_2,
            sigma_wrist: 0.119_063_730_573_208_6,
            wrist_margin: 0.204_398_018_006_088_12,
        }
    }
}

impl HandParams {
    fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("sigma_shape", self.sigma_shape),
            ("sigma_angle", self.sigma_angle),
            ("sigma_wrist", self.sigma_wrist),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(invalid!(
                    "hand.{name} must be a finite number > 0, got {value}"
                ));
            }
        }
        if !(self.wrist_margin.is_finite() && self.wrist_margin >= 0.0) {
            return Err(invalid!(
                "hand.wrist_margin must be a finite number >= 0, got {}",
                self.wrist_margin
            ));
        }
        Ok(())
    }
}

/// How two frames (L landmarks × 3 coordinates) are compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// Frames centred and scaled to unit Frobenius norm; the cost is the smallest Frobenius
    /// residual `‖X − R·Y‖` over proper rotations R.
    Procrustes,
    /// The same alignment; the cost is the sum over landmarks of the distance after alignment.
    ProcrustesSum,
    /// The paper's hand cost: wrist-anchored shape residual, rotation angle², wrist distance.
    Hand(HandParams),
    /// Emulates the paper's published code: `ProcrustesSum` with the rotation transposed, and
    /// a degenerate frame treated as all zeros (its cost against a frame Y is Σ_l ‖y_l‖).
    /// Not a distance to use; it exists to show where the published numbers came from.
    ProcrustesPaper,
}

/// What a missing (degenerate) frame costs against a present one; two missing frames cost 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MissingCost {
    /// A fixed cost.
    Constant(f64),
    /// The published code's rule: the missing frame is the zero shape, so it costs the
    /// present frame's Σ_l ‖y_l‖.
    ZeroShape,
}

/// Every metric name the engine accepts, in the order of the docs.
pub const METRIC_NAMES: [&str; 4] = ["procrustes", "procrustes-sum", "hand", "procrustes-paper"];

impl Metric {
    /// Parses a metric name; `hand` is used only by the `hand` metric.
    pub fn parse(name: &str, hand: HandParams) -> Result<Self> {
        let metric = match name {
            "procrustes" => Self::Procrustes,
            "procrustes-sum" => Self::ProcrustesSum,
            "hand" => {
                hand.validate()?;
                Self::Hand(hand)
            }
            "procrustes-paper" => Self::ProcrustesPaper,
            other => {
                return Err(invalid!(
                    "unknown metric {other:?}; expected one of {}",
                    METRIC_NAMES.join(", ")
                ))
            }
        };
        Ok(metric)
    }

    /// The metric's name as [`Metric::parse`] accepts it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Procrustes => METRIC_NAMES[0],
            Self::ProcrustesSum => METRIC_NAMES[1],
            Self::Hand(_) => METRIC_NAMES[2],
            Self::ProcrustesPaper => METRIC_NAMES[3],
        }
    }

    /// Fewest landmarks a frame needs: three points fix a rotation (for `hand`: the wrist
    /// and two more).
    pub fn min_landmarks(&self) -> usize {
        3
    }

    /// Whether `cost(a, b) == cost(b, a)`; only the paper's transposed rotation breaks it.
    pub fn is_symmetric(&self) -> bool {
        !matches!(self, Self::ProcrustesPaper)
    }

    /// The default cost of a missing frame against a present one: the largest value the
    /// metric can take between present frames of `n_landmarks` landmarks.
    ///
    /// Unit-norm frames have a residual of at most √2 after the optimal rotation (its
    /// trace term is never negative), so a sum of L landmark distances is at most √(2L);
    /// the paper's transposed rotation can reach a residual of 2, so 2·√L. For `hand` the
    /// bound is √2/σ1 + π²/σ2: the wrist term is left out, as a missing hand has no wrist.
    pub fn max_cost(&self, n_landmarks: usize) -> f64 {
        let l = n_landmarks as f64;
        match self {
            Self::Procrustes => std::f64::consts::SQRT_2,
            Self::ProcrustesSum => (2.0 * l).sqrt(),
            Self::ProcrustesPaper => 2.0 * l.sqrt(),
            Self::Hand(p) => {
                std::f64::consts::SQRT_2 / p.sigma_shape
                    + std::f64::consts::PI * std::f64::consts::PI / p.sigma_angle
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_back() {
        for name in METRIC_NAMES {
            assert_eq!(
                Metric::parse(name, HandParams::default()).unwrap().name(),
                name
            );
        }
    }

    #[test]
    fn rejects_unknown_metric_and_bad_sigma() {
        let err = Metric::parse("euclid", HandParams::default()).unwrap_err();
        assert!(err.to_string().contains("unknown metric \"euclid\""));
        let bad = HandParams {
            sigma_angle: 0.0,
            ..HandParams::default()
        };
        let err = Metric::parse("hand", bad).unwrap_err();
        assert!(err.to_string().contains("sigma_angle"));
        // Parameters of the hand cost do not concern the other metrics.
        assert!(Metric::parse("procrustes", bad).is_ok());
    }
}
