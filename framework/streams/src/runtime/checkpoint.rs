//! The `.checkpoint` file of a task, in Kafka's text format (`OffsetCheckpoint`): a version line (`0`), the number
//! of entries, then one `topic partition offset` line per changelog partition. The offset is the last changelog
//! offset the task's persistent stores contain; restoring resumes after it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::StreamsError;

/// The checkpoint file's name, in `<state.dir>/<application.id>/<task>/`.
pub const CHECKPOINT_FILE: &str = ".checkpoint";

/// Changelog partition → last offset the local stores contain.
pub type Checkpoint = BTreeMap<(String, i32), i64>;

fn error(path: &Path, reason: impl std::fmt::Display) -> StreamsError {
    StreamsError::store(".checkpoint", format!("{}: {reason}", path.display()))
}

/// Reads a checkpoint file; a missing file is an empty checkpoint.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint, StreamsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::new()),
        Err(e) => return Err(error(path, e)),
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(error(path, "unknown checkpoint version"));
    }
    let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| error(path, "no entry count"))?;
    let mut out = Checkpoint::new();
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let (Some(topic), Some(partition), Some(offset)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(error(path, format!("malformed line {line:?}")));
        };
        let partition = partition.parse().map_err(|_| error(path, format!("malformed line {line:?}")))?;
        let offset = offset.parse().map_err(|_| error(path, format!("malformed line {line:?}")))?;
        out.insert((topic.to_owned(), partition), offset);
    }
    if out.len() != count {
        return Err(error(path, "fewer entries than announced"));
    }
    Ok(out)
}

/// Writes a checkpoint file atomically (a temporary file renamed over the old one, as Kafka does).
pub fn write_checkpoint(path: &Path, checkpoint: &Checkpoint) -> Result<(), StreamsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| error(path, e))?;
    }
    let tmp = PathBuf::from(format!("{}.tmp", path.display()));
    let mut text = format!("0\n{}\n", checkpoint.len());
    for ((topic, partition), offset) in checkpoint {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let mut f = std::fs::File::create(&tmp).map_err(|e| error(path, e))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| error(path, e))?;
    std::fs::rename(&tmp, path).map_err(|e| error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0_1").join(CHECKPOINT_FILE);
        assert!(read_checkpoint(&path).unwrap().is_empty());
        let mut c = Checkpoint::new();
        c.insert(("app-counts-changelog".into(), 1), 41);
        write_checkpoint(&path, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "0\n1\napp-counts-changelog 1 41\n");
        assert_eq!(read_checkpoint(&path).unwrap(), c);
    }
}
