//! Which closed segments retention may delete, decided as Kafka's `UnifiedLog.deleteOldSegments` does: first
//! segments past `retention.ms`, then the oldest while the log is over `retention.bytes`, then those wholly below
//! the log start offset. Only whole closed segments go; the active segment never does (it is rolled by
//! `segment.ms` first, and deleted on a later pass).
//!
//! Pure functions over a snapshot, so the policy is tested without files; `UnifiedLog` applies the result.

use super::config::LogConfig;

/// What retention needs to know of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub base_offset: i64,
    pub size: u64,
    /// Largest timestamp in the segment, or its file's modification time when it has none (as Kafka).
    pub largest_timestamp: i64,
    /// Base offset of the following segment (the log end offset for the last one).
    pub next_offset: i64,
}

/// Why segments are deleted, for logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionReason {
    Time,
    Size,
    LogStartOffset,
}

/// How many of the oldest segments (in `segments`, oldest first, the last being active) to delete, and why.
pub fn deletable_prefix(
    segments: &[SegmentInfo],
    config: &LogConfig,
    now_ms: i64,
    log_start_offset: i64,
) -> (usize, Option<RetentionReason>) {
    let closed = segments.len().saturating_sub(1);
    let mut count = 0;
    let mut reason = None;
    if config.retention_ms >= 0 {
        while count < closed && now_ms.saturating_sub(segments[count].largest_timestamp) > config.retention_ms {
            count += 1;
            reason = Some(RetentionReason::Time);
        }
    }
    if config.retention_bytes >= 0 {
        let total: u64 = segments[count..].iter().map(|s| s.size).sum();
        let mut excess = total as i64 - config.retention_bytes;
        while count < closed && excess - segments[count].size as i64 >= 0 {
            excess -= segments[count].size as i64;
            count += 1;
            reason = Some(RetentionReason::Size);
        }
    }
    while count < closed && segments[count].next_offset <= log_start_offset {
        count += 1;
        reason = Some(RetentionReason::LogStartOffset);
    }
    (count, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs() -> Vec<SegmentInfo> {
        vec![
            SegmentInfo { base_offset: 0, size: 100, largest_timestamp: 1_000, next_offset: 10 },
            SegmentInfo { base_offset: 10, size: 100, largest_timestamp: 2_000, next_offset: 20 },
            SegmentInfo { base_offset: 20, size: 100, largest_timestamp: 3_000, next_offset: 30 },
            SegmentInfo { base_offset: 30, size: 50, largest_timestamp: 1, next_offset: 35 },
        ]
    }

    fn config(retention_ms: i64, retention_bytes: i64) -> LogConfig {
        LogConfig { retention_ms, retention_bytes, ..LogConfig::default() }
    }

    #[test]
    fn time_retention_deletes_expired_prefix_but_never_the_active_segment() {
        assert_eq!(deletable_prefix(&segs(), &config(1_500, -1), 3_000, 0), (1, Some(RetentionReason::Time)));
        assert_eq!(deletable_prefix(&segs(), &config(0, -1), 1_000_000, 0).0, 3);
        assert_eq!(deletable_prefix(&segs(), &config(-1, -1), 1_000_000, 0), (0, None));
    }

    #[test]
    fn size_retention_deletes_oldest_while_over_the_limit() {
        // As Kafka: a segment goes only if the log stays at or above the limit without it. 350 bytes, limit 160:
        // the first goes (250 left), the second would leave 150 < 160 and stays.
        assert_eq!(deletable_prefix(&segs(), &config(-1, 160), 0, 0), (1, Some(RetentionReason::Size)));
        assert_eq!(deletable_prefix(&segs(), &config(-1, 150), 0, 0).0, 2);
        assert_eq!(deletable_prefix(&segs(), &config(-1, 350), 0, 0).0, 0);
        assert_eq!(deletable_prefix(&segs(), &config(-1, 0), 0, 0).0, 3);
    }

    #[test]
    fn segments_below_log_start_offset_are_deleted() {
        assert_eq!(deletable_prefix(&segs(), &config(-1, -1), 0, 20), (2, Some(RetentionReason::LogStartOffset)));
        assert_eq!(deletable_prefix(&segs(), &config(-1, -1), 0, 19).0, 1);
        assert_eq!(deletable_prefix(&segs(), &config(-1, -1), 0, 35).0, 3);
    }
}
