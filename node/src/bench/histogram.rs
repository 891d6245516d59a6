//! A fixed-size log-linear latency histogram (microseconds), in the spirit of HdrHistogram:
//! values below 128 µs are exact, larger values fall into buckets of relative width 1/64
//! (under 1.6 % error); the maximum is kept exactly. Recording is one index computation and one
//! increment: no allocation on the request path.

/// Sub-buckets per power of two above the exact range (precision bits).
const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are recorded exactly.
const EXACT: u64 = SUB * 2;
/// Values are clamped to 2^40 µs (about 12.7 days).
const MAX_BITS: u32 = 40;
const BUCKETS: usize = (EXACT + (MAX_BITS - SUB_BITS - 1) as u64 * SUB) as usize;

/// Latencies in microseconds.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u32>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let v = v.min((1u64 << MAX_BITS) - 1);
    // v has `bits` significant bits, bits > SUB_BITS + 1; keep the top SUB_BITS + 1 of them.
    let bits = 64 - v.leading_zeros();
    let shift = bits - SUB_BITS - 1;
    // (v >> shift) is in [SUB, 2 * SUB): the first shifted range starts right after EXACT.
    (EXACT + u64::from(shift - 1) * SUB + ((v >> shift) - SUB)) as usize
}

/// The highest value that falls into bucket `i`.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let shift = (i - EXACT) / SUB + 1;
    let sub = (i - EXACT) % SUB + SUB;
    ((sub + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, micros: u64) {
        let i = index(micros);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
        self.max = self.max.max(micros);
        self.sum += u128::from(micros);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value at quantile `q` (0..=1): the upper bound of the bucket holding the
    /// ceil(q·n)-th smallest value, never above the recorded maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return upper(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        let mut last = 0usize;
        for v in (0..EXACT * 8).chain([1 << 20, (1 << 20) + 1, 1 << 39, u64::MAX]) {
            let i = index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(
                v.min((1 << MAX_BITS) - 1) <= upper(i),
                "{v} above bucket {i}"
            );
            if v < EXACT * 8 {
                assert!(i == last || i == last + 1, "{v}: {last} -> {i}");
                last = i;
            }
        }
        for i in EXACT as usize..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i);
            assert_eq!(index(upper(i) + 1), i + 1);
        }
    }

    #[test]
    fn quantiles_are_within_precision() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.02, "q{q}: {got} vs {exact}");
        }
        assert_eq!(h.quantile(1.0), 100_000);
        assert_eq!(h.max(), 100_000);
        assert_eq!(h.quantile(0.0), 1);
        assert!((h.mean() - 50_000.5).abs() < 1e-6);
    }

    #[test]
    fn merge_adds_up_and_empty_is_zero() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        assert_eq!(a.quantile(0.5), 0);
        a.record(10);
        b.record(30);
        b.record(5_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.5), 30);
        assert_eq!(a.max(), 5_000_000);
    }
}
