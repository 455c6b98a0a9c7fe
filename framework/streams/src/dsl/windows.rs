//! Window definitions (Kafka's `TimeWindows`, `SlidingWindows`, `SessionWindows`, `JoinWindows`), each with a
//! grace period: how long after a window ends records for it are still accepted (measured in stream time).

use std::time::Duration;

use super::builder::ms;
use crate::Window;

/// Fixed-size windows aligned to the epoch: tumbling (advance = size) or hopping (advance < size). A record
/// with timestamp `t` falls in every window `[start, start + size)` with `start <= t < start + size`.
///
/// ```
/// use std::time::Duration;
/// use spate_streams::{TimeWindows, Window};
/// let hopping = TimeWindows::of_size_with_no_grace(Duration::from_millis(10)).advance_by(Duration::from_millis(5));
/// assert_eq!(hopping.windows_for(12), vec![Window::new(5, 15), Window::new(10, 20)]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub(crate) size: i64,
    pub(crate) advance: i64,
    pub(crate) grace: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size`; records later than the window end are dropped.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        TimeWindows { size: ms(size).max(1), advance: ms(size).max(1), grace: 0 }
    }
    /// Tumbling windows of `size` accepting records up to `grace` after the window end.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        TimeWindows { size: ms(size).max(1), advance: ms(size).max(1), grace: ms(grace) }
    }
    /// Hopping windows: a new window every `advance` (at most the size).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance = ms(advance).clamp(1, self.size);
        self
    }
    /// Window size (ms).
    pub fn size_ms(&self) -> i64 {
        self.size
    }
    /// Grace period (ms).
    pub fn grace_ms(&self) -> i64 {
        self.grace
    }
    /// The windows a record at `timestamp` belongs to, by start time.
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let first = (timestamp - self.size + self.advance).max(0);
        let mut start = first - first % self.advance;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window::new(start, start + self.size));
            start += self.advance;
        }
        out
    }
}

/// Windows of records no more than `time_difference` apart (Kafka's `SlidingWindows`): windows `[start, start +
/// difference]`, inclusive at both ends, that exist only where records are — each record's left window
/// `[t - difference, t]` and, once a later record falls in it, its right window `[t + 1, t + 1 + difference]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Maximum time difference (ms).
    pub time_difference: i64,
    /// Grace (ms).
    pub grace: i64,
}

impl SlidingWindows {
    /// `SlidingWindows::of_time_difference_and_grace(difference, grace)`.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        SlidingWindows { time_difference: ms(difference), grace: ms(grace) }
    }
    /// Sliding windows without grace: late records are dropped.
    pub fn of_time_difference_without_grace(difference: Duration) -> Self {
        SlidingWindows { time_difference: ms(difference), grace: 0 }
    }
}

/// Sessions: records of a key closer than `inactivity_gap` to each other form one window `[first, last]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub(crate) gap: i64,
    pub(crate) grace: i64,
}

impl SessionWindows {
    /// Sessions split by `gap` of inactivity; late records are dropped.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        SessionWindows { gap: ms(gap), grace: 0 }
    }
    /// Sessions split by `gap` of inactivity, accepting records up to `grace` after a session ends.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        SessionWindows { gap: ms(gap), grace: ms(grace) }
    }
}

/// Which records of two streams join: those whose timestamps are at most `before`/`after` apart
/// (other's time in `[this - before, this + after]`), with a grace period for late ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub(crate) before: i64,
    pub(crate) after: i64,
    pub(crate) grace: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; late records are dropped.
    pub fn of_time_difference_without_grace(difference: Duration) -> Self {
        JoinWindows { before: ms(difference), after: ms(difference), grace: 0 }
    }
    /// Records at most `difference` apart join, accepting records up to `grace` late.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        JoinWindows { before: ms(difference), after: ms(difference), grace: ms(grace) }
    }
    /// Sets how far before this stream's record the other's may be.
    pub fn before(mut self, before: Duration) -> Self {
        self.before = ms(before);
        self
    }
    /// Sets how far after this stream's record the other's may be.
    pub fn after(mut self, after: Duration) -> Self {
        self.after = ms(after);
        self
    }
}
