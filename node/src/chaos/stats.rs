//! Small numeric helpers shared by the report's figures.

/// The nearest-rank percentile `p` (0–100) of sorted values (0 when there are none).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rounded to the microsecond (milliseconds) or millisecond (seconds): readable JSON.
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
