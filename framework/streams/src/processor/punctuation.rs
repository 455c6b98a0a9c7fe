//! Punctuators: callbacks a processor schedules on stream time (advanced by record timestamps) or wall-clock time
//! (advanced by the caller: the stream thread, or the test driver's `advance_wall_clock_time`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Which clock drives a punctuator (Kafka's `PunctuationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. The first punctuation comes with the first
    /// record; later ones are aligned to multiples of the interval, and a jump fires once, not once per interval.
    StreamTime,
    /// Wall-clock time: first `interval` after scheduling, then every `interval` as the caller advances the clock.
    WallClockTime,
}

/// Cancels a scheduled punctuator (Kafka's `Cancellable`).
#[derive(Debug, Clone)]
pub struct Cancellable {
    pub(crate) cancelled: Arc<AtomicBool>,
}

impl Cancellable {
    /// Stops further punctuations.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// When a schedule fires next, per Kafka's `PunctuationSchedule.next`: one interval later, or, when time jumped
/// past several intervals, the next aligned point after now (missed punctuations are not replayed).
pub(crate) fn next_time(scheduled: i64, now: i64, interval: i64) -> i64 {
    let next = scheduled.saturating_add(interval);
    if now >= next {
        now - (now - scheduled) % interval + interval
    } else {
        next
    }
}

#[cfg(test)]
mod tests {
    use super::next_time;

    #[test]
    fn a_jump_over_several_intervals_fires_once_and_stays_aligned() {
        assert_eq!(next_time(0, 0, 10), 10);
        assert_eq!(next_time(10, 35, 10), 40);
        assert_eq!(next_time(10, 12, 10), 20);
    }
}
