//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`), kept at
//! the data-dir level exactly as Kafka's `OffsetCheckpointFile` writes them, so Kafka can read a Spate data dir:
//!
//! ```text
//! 0                  <- version
//! 2                  <- entry count
//! orders 0 1234      <- topic partition offset
//! orders 1 99
//! ```
//!
//! Files are replaced atomically (write `.tmp`, fsync, rename, fsync the folder) so a crash leaves the old or the
//! new file, never a torn one. A file that cannot be parsed is ignored with a warning: the only cost is a longer
//! recovery.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;

use super::segment::sync_dir;
use super::TopicPartition;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";

/// Reads a checkpoint file; a missing file is empty, a malformed one is empty with a warning.
pub fn read_checkpoint(path: &Path) -> HashMap<TopicPartition, i64> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read checkpoint file; ignoring it");
            return HashMap::new();
        }
    };
    match parse(&text) {
        Some(map) => map,
        None => {
            tracing::warn!(path = %path.display(), "malformed checkpoint file; ignoring it");
            HashMap::new()
        }
    }
}

/// Parses text in the format of a Kafka checkpoint file (version 0); `None` if it does not follow it.
pub fn parse(text: &str) -> Option<HashMap<TopicPartition, i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut map = HashMap::new();
    for line in lines.by_ref().take(count) {
        let mut parts = line.split(' ');
        let (topic, partition, offset) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        map.insert(TopicPartition::new(topic, partition.parse().ok()?), offset.parse().ok()?);
    }
    (map.len() == count).then_some(map)
}

/// Writes a checkpoint file atomically.
pub fn write_checkpoint(dir: &Path, name: &str, entries: &HashMap<TopicPartition, i64>) -> io::Result<()> {
    let mut sorted: Vec<_> = entries.iter().collect();
    sorted.sort();
    let mut text = format!("0\n{}\n", sorted.len());
    for (tp, offset) in sorted {
        text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, offset));
    }
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = HashMap::new();
        entries.insert(TopicPartition::new("orders", 1), 99);
        entries.insert(TopicPartition::new("my-topic", 0), 1234);
        write_checkpoint(dir.path(), "cp", &entries).unwrap();
        let text = std::fs::read_to_string(dir.path().join("cp")).unwrap();
        assert_eq!(text, "0\n2\nmy-topic 0 1234\norders 1 99\n");
        assert_eq!(read_checkpoint(&dir.path().join("cp")), entries);
    }

    #[test]
    fn malformed_or_missing_files_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_checkpoint(&dir.path().join("nope")).is_empty());
        for bad in ["1\n0\n", "0\n2\na 0 1\n", "0\n1\na x 1\n", "garbage"] {
            std::fs::write(dir.path().join("cp"), bad).unwrap();
            assert!(read_checkpoint(&dir.path().join("cp")).is_empty(), "{bad:?}");
        }
    }
}
