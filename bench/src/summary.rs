//! Pure arithmetic of the figures: rates, medians of repeated rounds, ours/peer ratios, and
//! the loop mode's prediction of the next size's time.

use serde_json::{json, Value};

/// Rounds to `places` decimals, for a JSON that reads well.
pub fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// `count` per second over `seconds` (0 for an empty or zero span).
pub fn rate(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count / seconds
    } else {
        0.0
    }
}

/// The median, least and greatest of some readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// `None` when there are no readings (NaNs are left out).
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }

    pub fn json(&self, places: i32) -> Value {
        json!({
            "median": round_to(self.median, places),
            "min": round_to(self.min, places),
            "max": round_to(self.max, places),
        })
    }
}

/// How long `next_steps` steps will take, from the sizes already run (`(steps, seconds)`,
/// in the order run): the cost is assumed to grow as `steps^k`, with `k` measured between
/// the last two sizes (at least 1, so noise never predicts a faster-than-linear size) or 2
/// (quadratic, as 0.1 is) when only one size has run. `None` before any size has run.
pub fn predict_seconds(done: &[(u64, f64)], next_steps: u64) -> Option<f64> {
    let &(steps, secs) = done.last()?;
    let exponent = match done.len().checked_sub(2).and_then(|i| done.get(i)) {
        Some(&(prev_steps, prev_secs))
            if prev_steps > 0 && prev_secs > 0.0 && steps != prev_steps =>
        {
            ((secs / prev_secs).ln() / (steps as f64 / prev_steps as f64).ln()).max(1.0)
        }
        _ => 2.0,
    };
    if steps == 0 {
        return Some(secs);
    }
    Some(secs * (next_steps as f64 / steps as f64).powf(exponent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn spread_takes_the_middle_reading() -> anyhow::Result<()> {
        let s = Spread::of(&[3.0, 1.0, 2.0]).context("no spread")?;
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, f64::NAN, 2.0, 3.0]).context("no spread")?;
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(s.json(1), json!({"median": 2.5, "min": 1.0, "max": 4.0}));
        Ok(())
    }

    #[test]
    fn rates_and_rounding() {
        assert_eq!(rate(1000.0, 2.0), 500.0);
        assert_eq!(rate(5.0, 0.0), 0.0);
        assert_eq!(round_to(2.34567, 2), 2.35);
        assert_eq!(round_to(1234.5, 0), 1235.0);
    }

    #[test]
    fn one_size_predicts_quadratic_growth() {
        // 0.1.0: 1,003 steps in 1.04 s predicts 10,003 steps in about 104 s.
        let p = predict_seconds(&[(1000, 1.0)], 10_000).unwrap_or_default();
        assert!((p - 100.0).abs() < 1e-9, "{p}");
        assert_eq!(predict_seconds(&[], 10), None);
    }

    #[test]
    fn two_sizes_predict_with_the_measured_exponent() {
        // Quadratic between 1k and 10k: 100k predicted 100 × the 10k time.
        let p = predict_seconds(&[(1000, 1.0), (10_000, 100.0)], 100_000).unwrap_or_default();
        assert!((p - 10_000.0).abs() < 1e-6, "{p}");
        // Linear: ten times the steps, ten times the time.
        let p = predict_seconds(&[(1000, 0.02), (10_000, 0.2)], 100_000).unwrap_or_default();
        assert!((p - 2.0).abs() < 1e-9, "{p}");
        // Noise that looks sub-linear still predicts linear growth.
        let p = predict_seconds(&[(1000, 0.5), (10_000, 0.6)], 100_000).unwrap_or_default();
        assert!((p - 6.0).abs() < 1e-9, "{p}");
    }
}
