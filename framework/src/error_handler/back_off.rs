//! Back-offs (Spring's `BackOff` / `BackOffExecution`): how long to wait before each retry of a failed record, and
//! when to stop retrying. A [`BackOff`] is configuration; [`BackOff::start`] begins one record's sequence of delays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Configuration of a sequence of delays; one [`BackOffExecution`] is started per failed record.
pub trait BackOff: Send + Sync + std::fmt::Debug + 'static {
    /// Starts the delays of one failed record.
    fn start(&self) -> Box<dyn BackOffExecution>;
}

/// One record's sequence of delays.
pub trait BackOffExecution: Send {
    /// The delay before the next retry, or `None` when retries are exhausted (the record goes to the recoverer).
    fn next_back_off(&mut self) -> Option<Duration>;
}

/// Retries at a fixed interval (Spring's `FixedBackOff`): `max_attempts` calls in total, the first included, so
/// `max_attempts - 1` delays.
///
/// ```
/// use spate::error_handler::{BackOff, FixedBackOff};
/// use std::time::Duration;
/// let mut e = FixedBackOff { interval: Duration::from_millis(100), max_attempts: 3 }.start();
/// assert_eq!(e.next_back_off(), Some(Duration::from_millis(100)));
/// assert_eq!(e.next_back_off(), Some(Duration::from_millis(100)));
/// assert_eq!(e.next_back_off(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedBackOff {
    /// Delay between attempts.
    pub interval: Duration,
    /// Calls in total, the first included.
    pub max_attempts: u32,
}

impl Default for FixedBackOff {
    /// Spring's default: 10 calls, no delay.
    fn default() -> Self {
        FixedBackOff { interval: Duration::ZERO, max_attempts: 10 }
    }
}

impl FixedBackOff {
    /// `max_attempts` calls in total, `interval` apart.
    pub fn new(interval: Duration, max_attempts: u32) -> Self {
        FixedBackOff { interval, max_attempts }
    }
}

struct FixedExecution {
    interval: Duration,
    left: u32,
}

impl BackOffExecution for FixedExecution {
    fn next_back_off(&mut self) -> Option<Duration> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(self.interval)
    }
}

impl BackOff for FixedBackOff {
    fn start(&self) -> Box<dyn BackOffExecution> {
        Box::new(FixedExecution { interval: self.interval, left: self.max_attempts.saturating_sub(1) })
    }
}

/// How delays are randomised around their nominal value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Exactly the nominal delay.
    None,
    /// Uniform in `[d × (1 − f), d × (1 + f)]`, never above the maximum interval.
    Proportional(f64),
    /// Uniform in `[0, d]` ("full jitter"): spreads retries of many clients the most.
    Full,
}

/// Delays growing by a multiplier up to a maximum interval (Spring's `ExponentialBackOff`, and
/// `ExponentialBackOffWithMaxRetries` with [`max_retries`](Self::max_retries)), optionally with jitter.
///
/// The n-th delay (n from 0) is `min(initial_interval × multiplier^n, max_interval)`. Retries stop after
/// `max_retries` delays, or when the next delay would take the sum of delays past `max_elapsed_time` — whichever
/// comes first; with neither set they never stop (Spring's default too), which for in-place retries blocks the
/// partition until the record succeeds.
///
/// ```
/// use spate::error_handler::{BackOff, ExponentialBackOff};
/// use std::time::Duration;
/// let b = ExponentialBackOff::new(Duration::from_millis(100), 2.0)
///     .max_interval(Duration::from_millis(300))
///     .max_retries(4);
/// let mut e = b.start();
/// let delays: Vec<_> = std::iter::from_fn(|| e.next_back_off()).map(|d| d.as_millis()).collect();
/// assert_eq!(delays, [100, 200, 300, 300]);
///
/// // 20 % jitter: each delay within ±20 % of the nominal one.
/// let jittered = ExponentialBackOff::with_max_retries(3).jitter(0.2);
/// let d = jittered.start().next_back_off().unwrap();
/// assert!(d >= Duration::from_millis(1600) && d <= Duration::from_millis(2400));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialBackOff {
    initial_interval: Duration,
    multiplier: f64,
    max_interval: Duration,
    max_retries: Option<u32>,
    max_elapsed_time: Option<Duration>,
    jitter: Jitter,
    seed: Option<u64>,
}

impl Default for ExponentialBackOff {
    /// Spring's defaults: 2 s initial interval, multiplier 1.5, 30 s maximum interval, no limit.
    fn default() -> Self {
        ExponentialBackOff {
            initial_interval: Duration::from_secs(2),
            multiplier: 1.5,
            max_interval: Duration::from_secs(30),
            max_retries: None,
            max_elapsed_time: None,
            jitter: Jitter::None,
            seed: None,
        }
    }
}

impl ExponentialBackOff {
    /// Starts at `initial_interval` and multiplies by `multiplier` (values below 1 are taken as 1).
    pub fn new(initial_interval: Duration, multiplier: f64) -> Self {
        ExponentialBackOff { initial_interval, multiplier: multiplier.max(1.0), ..Self::default() }
    }

    /// Spring's `ExponentialBackOffWithMaxRetries`: the defaults, stopping after `max_retries` retries.
    pub fn with_max_retries(max_retries: u32) -> Self {
        Self::default().max_retries(max_retries)
    }

    /// The largest delay.
    pub fn max_interval(mut self, max: Duration) -> Self {
        self.max_interval = max;
        self
    }

    /// Retries (calls after the first one) at most.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Calls in total, the first included, as [`FixedBackOff::max_attempts`] counts them: `max_retries(n - 1)`.
    pub fn max_attempts(self, n: u32) -> Self {
        self.max_retries(n.saturating_sub(1))
    }

    /// The delays of one record add up to at most this.
    pub fn max_elapsed_time(mut self, max: Duration) -> Self {
        self.max_elapsed_time = Some(max);
        self
    }

    /// Each delay uniform within `±fraction` of its nominal value (`fraction` clamped to `0..=1`), capped at the
    /// maximum interval.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = Jitter::Proportional(fraction.clamp(0.0, 1.0));
        self
    }

    /// Each delay uniform in `[0, nominal]`.
    pub fn full_jitter(mut self) -> Self {
        self.jitter = Jitter::Full;
        self
    }

    /// Seeds the jitter's random numbers (reproducible delays, for tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

impl BackOff for ExponentialBackOff {
    fn start(&self) -> Box<dyn BackOffExecution> {
        Box::new(ExponentialExecution {
            config: self.clone(),
            next_nominal: self.initial_interval.min(self.max_interval),
            retries: 0,
            elapsed: Duration::ZERO,
            rng: SplitMix64::new(self.seed.unwrap_or_else(fresh_seed)),
        })
    }
}

struct ExponentialExecution {
    config: ExponentialBackOff,
    next_nominal: Duration,
    retries: u32,
    elapsed: Duration,
    rng: SplitMix64,
}

impl BackOffExecution for ExponentialExecution {
    fn next_back_off(&mut self) -> Option<Duration> {
        let c = &self.config;
        if c.max_retries.is_some_and(|m| self.retries >= m) {
            return None;
        }
        let nominal = self.next_nominal;
        let delay = match c.jitter {
            Jitter::None => nominal,
            Jitter::Proportional(f) => {
                let factor = 1.0 - f + 2.0 * f * self.rng.next_f64();
                nominal.mul_f64(factor).min(c.max_interval)
            }
            Jitter::Full => nominal.mul_f64(self.rng.next_f64()),
        };
        if c.max_elapsed_time.is_some_and(|max| self.elapsed + delay > max) {
            return None;
        }
        self.retries += 1;
        self.elapsed += delay;
        // Saturate rather than overflow for long-running records.
        let grown = nominal.as_secs_f64() * c.multiplier;
        self.next_nominal =
            if grown >= c.max_interval.as_secs_f64() { c.max_interval } else { Duration::from_secs_f64(grown) };
        Some(delay)
    }
}

/// Wraps any back-off function: `f(retry)` (0 for the first retry) gives the delay, `None` to stop.
///
/// ```
/// use spate::error_handler::{BackOff, FnBackOff};
/// use std::time::Duration;
/// let b = FnBackOff::new(|retry| (retry < 2).then(|| Duration::from_millis(50 * (retry as u64 + 1))));
/// let mut e = b.start();
/// assert_eq!(e.next_back_off(), Some(Duration::from_millis(50)));
/// assert_eq!(e.next_back_off(), Some(Duration::from_millis(100)));
/// assert_eq!(e.next_back_off(), None);
/// ```
#[derive(Clone)]
pub struct FnBackOff {
    f: std::sync::Arc<dyn Fn(u32) -> Option<Duration> + Send + Sync>,
}

impl FnBackOff {
    /// A back-off computed by `f`.
    pub fn new(f: impl Fn(u32) -> Option<Duration> + Send + Sync + 'static) -> Self {
        FnBackOff { f: std::sync::Arc::new(f) }
    }
}

impl std::fmt::Debug for FnBackOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnBackOff")
    }
}

impl BackOff for FnBackOff {
    fn start(&self) -> Box<dyn BackOffExecution> {
        let f = self.f.clone();
        let mut retry = 0u32;
        Box::new(FnExecution(Box::new(move || {
            let d = f(retry);
            retry = retry.saturating_add(1);
            d
        })))
    }
}

struct FnExecution(Box<dyn FnMut() -> Option<Duration> + Send>);

impl BackOffExecution for FnExecution {
    fn next_back_off(&mut self) -> Option<Duration> {
        (self.0)()
    }
}

/// A small, fast PRNG (SplitMix64); jitter needs spread, not cryptographic quality.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn fresh_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64);
    nanos.unwrap_or(0) ^ COUNTER.fetch_add(0x9E37_79B9, Ordering::Relaxed).rotate_left(17)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(b: &dyn BackOff) -> Vec<Duration> {
        let mut e = b.start();
        std::iter::from_fn(|| e.next_back_off()).take(1000).collect()
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn fixed_back_off_gives_max_attempts_minus_one_delays() {
        assert_eq!(delays(&FixedBackOff::new(ms(5), 4)), vec![ms(5); 3]);
        assert!(delays(&FixedBackOff::new(ms(5), 1)).is_empty());
        assert!(delays(&FixedBackOff::new(ms(5), 0)).is_empty());
        assert_eq!(delays(&FixedBackOff::default()).len(), 9);
    }

    #[test]
    fn each_execution_starts_afresh() {
        let b = FixedBackOff::new(ms(1), 3);
        let mut a = b.start();
        assert!(a.next_back_off().is_some());
        assert!(a.next_back_off().is_some());
        assert!(a.next_back_off().is_none());
        assert_eq!(delays(&b).len(), 2);
    }

    #[test]
    fn exponential_grows_by_multiplier_and_caps_at_max_interval() {
        let b = ExponentialBackOff::new(ms(100), 3.0).max_interval(ms(2000)).max_retries(5);
        assert_eq!(delays(&b), vec![ms(100), ms(300), ms(900), ms(2000), ms(2000)]);
    }

    #[test]
    fn exponential_stops_before_exceeding_max_elapsed_time() {
        // 100 + 200 + 400 = 700; the next (800) would make 1500 > 1000.
        let b = ExponentialBackOff::new(ms(100), 2.0).max_interval(ms(10_000)).max_elapsed_time(ms(1000));
        assert_eq!(delays(&b), vec![ms(100), ms(200), ms(400)]);
    }

    #[test]
    fn max_attempts_counts_the_first_call() {
        let b = ExponentialBackOff::new(ms(10), 2.0).max_attempts(3);
        assert_eq!(delays(&b), vec![ms(10), ms(20)]);
        assert!(delays(&ExponentialBackOff::new(ms(10), 2.0).max_attempts(0)).is_empty());
    }

    #[test]
    fn exponential_stops_at_whichever_limit_comes_first() {
        let b = ExponentialBackOff::new(ms(100), 2.0).max_retries(2).max_elapsed_time(ms(10_000));
        assert_eq!(delays(&b).len(), 2);
    }

    #[test]
    fn spring_defaults_and_with_max_retries() {
        let b = ExponentialBackOff::with_max_retries(4);
        assert_eq!(delays(&b), vec![ms(2000), ms(3000), ms(4500), ms(6750)]);
        // Unlimited by default.
        assert_eq!(delays(&ExponentialBackOff::default()).len(), 1000);
    }

    #[test]
    fn multiplier_below_one_does_not_shrink_delays() {
        let b = ExponentialBackOff::new(ms(100), 0.5).max_retries(3);
        assert_eq!(delays(&b), vec![ms(100); 3]);
    }

    #[test]
    fn proportional_jitter_stays_within_bounds_and_spreads() {
        let nominal = [100u64, 200, 400, 800, 1000, 1000];
        let b = ExponentialBackOff::new(ms(100), 2.0).max_interval(ms(1000)).max_retries(6).jitter(0.2);
        let mut below = 0;
        let mut above = 0;
        for _ in 0..2000 {
            let d = delays(&b);
            assert_eq!(d.len(), 6);
            for (got, n) in d.iter().zip(nominal) {
                assert!(*got >= ms(n).mul_f64(0.8), "{got:?} below 80% of {n} ms");
                assert!(*got <= ms(n).mul_f64(1.2).min(ms(1000)), "{got:?} above bound of {n} ms");
                if *got < ms(n).mul_f64(0.9) {
                    below += 1;
                }
                if *got > ms(n).mul_f64(1.1) {
                    above += 1;
                }
            }
        }
        // Uniform draws reach both outer tenths; with 12 000 draws, missing either is astronomically unlikely.
        assert!(below > 100 && above > 100, "below={below} above={above}");
    }

    #[test]
    fn full_jitter_stays_within_zero_and_nominal() {
        let b = ExponentialBackOff::new(ms(100), 2.0).max_interval(ms(400)).max_retries(4).full_jitter();
        let mut small = 0;
        for _ in 0..2000 {
            for (got, n) in delays(&b).iter().zip([100u64, 200, 400, 400]) {
                assert!(*got <= ms(n));
                if *got < ms(n) / 4 {
                    small += 1;
                }
            }
        }
        assert!(small > 500, "full jitter should often be far below nominal: {small}");
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let b = ExponentialBackOff::new(ms(100), 2.0).max_retries(8).jitter(0.5).seed(42);
        assert_eq!(delays(&b), delays(&b));
        let other = b.clone().seed(43);
        assert_ne!(delays(&b), delays(&other));
    }

    #[test]
    fn unseeded_executions_differ() {
        let b = ExponentialBackOff::new(ms(1000), 2.0).max_retries(8).jitter(0.5);
        assert_ne!(delays(&b), delays(&b));
    }
}
