//! The `.lock` file of a data directory (Kafka's `LogManager` takes the same lock on every log dir): two brokers
//! writing one directory would interleave segments and checkpoints and corrupt both, so the second one must refuse
//! to start. An advisory `flock` is released by the kernel when the holder exits, also on `kill -9`, so a crashed
//! broker never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::log::LogError;

/// File name inside the data directory, as Kafka names it.
pub const LOCK_FILE: &str = ".lock";

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it, or fails at once when another broker (process, or another broker in
    /// this process) holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(LogError::DataDirLocked { dir: dir.to_path_buf() });
            }
            return Err(LogError::io(&path, err));
        }
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, LogError::DataDirLocked { .. }), "{err}");
        assert!(err.to_string().contains("another broker"), "{err}");
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn the_data_dir_is_created_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let lock = DataDirLock::acquire(&nested).unwrap();
        assert!(lock.path().exists());
    }
}
