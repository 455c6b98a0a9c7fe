//! Fixed-bucket histograms for the per-record timers (listener invocations, template sends), rendered in the
//! Prometheus text format after the `metrics` registry's series.
//!
//! Why not the `metrics` exporter's histogram: it keeps every sample until its upkeep folds them into buckets, so
//! a listener at a million records a second buffered millions of samples between upkeeps and spent a fifth of its
//! time recording them. Here a sample is three relaxed atomic additions, and memory does not grow with the rate;
//! the container's fast path adds samples up in a [`LocalHistogram`] and adds that once per poll.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// One series: counts per bucket (not cumulative; the last is `+Inf`), the number of samples and their sum.
pub(crate) struct Histogram {
    bounds_nanos: &'static [u64],
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new(bounds_nanos: &'static [u64]) -> Self {
        Histogram {
            bounds_nanos,
            counts: (0..=bounds_nanos.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        let nanos = nanos(elapsed);
        if let Some(c) = self.counts.get(bucket(self.bounds_nanos, nanos)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Adds what `local` gathered and empties it.
    pub(crate) fn add(&self, local: &mut LocalHistogram) {
        if local.count == 0 {
            return;
        }
        for (shared, n) in self.counts.iter().zip(local.counts.iter_mut()) {
            if *n > 0 {
                shared.fetch_add(std::mem::take(n), Ordering::Relaxed);
            }
        }
        self.count.fetch_add(std::mem::take(&mut local.count), Ordering::Relaxed);
        self.sum_nanos.fetch_add(std::mem::take(&mut local.sum_nanos), Ordering::Relaxed);
    }
}

fn nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Prometheus buckets are "less than or equal": the first bound not below the sample. Nearly every listener
/// invocation lands in the first bucket, so that is tried first.
fn bucket(bounds_nanos: &[u64], nanos: u64) -> usize {
    match bounds_nanos.first() {
        Some(first) if nanos <= *first => 0,
        _ => bounds_nanos.partition_point(|b| *b < nanos),
    }
}

/// Samples gathered by one task without atomics, added to a [`Histogram`] now and then.
pub(crate) struct LocalHistogram {
    bounds_nanos: &'static [u64],
    counts: Box<[u64]>,
    count: u64,
    sum_nanos: u64,
}

impl LocalHistogram {
    pub(crate) fn new(bounds_nanos: &'static [u64]) -> Self {
        LocalHistogram { bounds_nanos, counts: vec![0; bounds_nanos.len() + 1].into(), count: 0, sum_nanos: 0 }
    }

    pub(crate) fn record_nanos(&mut self, nanos: u64) {
        if let Some(c) = self.counts.get_mut(bucket(self.bounds_nanos, nanos)) {
            *c += 1;
        }
        self.count += 1;
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }
}

/// Label names and values of one series.
type Labels = Vec<(&'static str, String)>;

/// A histogram metric: its name, help, bucket bounds and series by label values.
pub(crate) struct Family {
    name: &'static str,
    help: &'static str,
    bounds: &'static [f64],
    bounds_nanos: &'static [u64],
    series: RwLock<Vec<(Labels, Arc<Histogram>)>>,
}

impl Family {
    /// `bounds` in seconds, ascending; `bounds_nanos` the same in nanoseconds (two constants, so no allocation
    /// leaks into a `'static`).
    pub(crate) const fn new(
        name: &'static str,
        help: &'static str,
        bounds: &'static [f64],
        bounds_nanos: &'static [u64],
    ) -> Self {
        Family { name, help, bounds, bounds_nanos, series: RwLock::new(Vec::new()) }
    }

    /// The series with these labels, created on first use. Callers keep the handle: this takes a lock.
    pub(crate) fn series(&self, labels: &[(&'static str, &str)]) -> Arc<Histogram> {
        let same = |l: &[(&'static str, String)]| {
            l.len() == labels.len() && l.iter().zip(labels).all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        };
        if let Some((_, h)) = self.series.read().iter().find(|(l, _)| same(l)) {
            return h.clone();
        }
        let mut series = self.series.write();
        if let Some((_, h)) = series.iter().find(|(l, _)| same(l)) {
            return h.clone();
        }
        let h = Arc::new(Histogram::new(self.bounds_nanos));
        series.push((labels.iter().map(|(k, v)| (*k, v.to_string())).collect(), h.clone()));
        h
    }

    /// Appends the family in the Prometheus text format (nothing when it has no series).
    pub(crate) fn render(&self, out: &mut String) {
        let series = self.series.read();
        if series.is_empty() {
            return;
        }
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (labels, h) in series.iter() {
            let mut base = String::new();
            for (k, v) in labels {
                let _ = write!(base, "{k}=\"{}\",", escape(v));
            }
            let mut cumulative = 0;
            for (i, c) in h.counts.iter().enumerate() {
                cumulative += c.load(Ordering::Relaxed);
                match self.bounds.get(i) {
                    Some(le) => {
                        let _ = writeln!(out, "{name}_bucket{{{base}le=\"{le}\"}} {cumulative}");
                    }
                    None => {
                        let _ = writeln!(out, "{name}_bucket{{{base}le=\"+Inf\"}} {cumulative}");
                    }
                }
            }
            let labels = base.trim_end_matches(',');
            let sum = Duration::from_nanos(h.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count.load(Ordering::Relaxed));
        }
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if !v.contains(['\\', '"', '\n']) {
        return v.into();
    }
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[f64] = &[0.001, 0.01];
    const BOUNDS_NANOS: &[u64] = &[1_000_000, 10_000_000];

    #[test]
    fn samples_land_in_the_first_bucket_not_below_them_and_render_cumulatively() {
        let f = Family::new("t_seconds", "Test time", BOUNDS, BOUNDS_NANOS);
        let h = f.series(&[("listener_id", "a\"b"), ("result", "success")]);
        h.record(Duration::from_micros(500));
        h.record(Duration::from_millis(1)); // on the bound: that bucket
        h.record(Duration::from_millis(5));
        h.record(Duration::from_secs(2));
        let mut out = String::new();
        f.render(&mut out);
        let expected = "# HELP t_seconds Test time\n# TYPE t_seconds histogram\n\
            t_seconds_bucket{listener_id=\"a\\\"b\",result=\"success\",le=\"0.001\"} 2\n\
            t_seconds_bucket{listener_id=\"a\\\"b\",result=\"success\",le=\"0.01\"} 3\n\
            t_seconds_bucket{listener_id=\"a\\\"b\",result=\"success\",le=\"+Inf\"} 4\n\
            t_seconds_sum{listener_id=\"a\\\"b\",result=\"success\"} 2.0065\n\
            t_seconds_count{listener_id=\"a\\\"b\",result=\"success\"} 4\n";
        assert_eq!(out, expected);
    }

    #[test]
    fn local_samples_added_to_a_series_render_as_if_recorded_there() {
        let direct = Family::new("t_seconds", "Test time", BOUNDS, BOUNDS_NANOS);
        let added = Family::new("t_seconds", "Test time", BOUNDS, BOUNDS_NANOS);
        let samples = [Duration::from_micros(500), Duration::from_millis(1), Duration::from_secs(2)];
        let h = direct.series(&[("topic", "x")]);
        let mut local = LocalHistogram::new(BOUNDS_NANOS);
        for s in samples {
            h.record(s);
            local.record_nanos(nanos(s));
        }
        let target = added.series(&[("topic", "x")]);
        target.add(&mut local);
        // Emptied: adding again changes nothing.
        target.add(&mut local);
        let (mut a, mut b) = (String::new(), String::new());
        direct.render(&mut a);
        added.render(&mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn the_same_labels_give_the_same_series_and_an_empty_family_renders_nothing() {
        let f = Family::new("t_seconds", "Test time", BOUNDS, BOUNDS_NANOS);
        let mut out = String::new();
        f.render(&mut out);
        assert!(out.is_empty());
        let a = f.series(&[("topic", "x")]);
        let b = f.series(&[("topic", "x")]);
        let c = f.series(&[("topic", "y")]);
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
