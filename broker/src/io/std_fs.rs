//! The portable backend: `pwrite` and `fdatasync` issued one by one from the storage thread.
//!
//! Used where io_uring is unavailable (seccomp-filtered containers, old kernels) or chosen explicitly. The storage
//! thread is its own blocking thread, so the tokio runtime never waits on the disk; batching and fsync coalescing
//! come from the shared round logic in `io/mod.rs`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::{Executor, WriteJob};

pub(crate) struct StdExecutor;

impl Executor for StdExecutor {
    fn write_all(&mut self, jobs: &[WriteJob]) -> Vec<io::Result<()>> {
        // write_all_at retries short writes and EINTR.
        jobs.iter().map(|job| job.file.write_all_at(&job.data, job.offset)).collect()
    }

    fn sync_all(&mut self, files: &[Arc<File>]) -> Vec<io::Result<()>> {
        files.iter().map(|file| file.sync_data()).collect()
    }
}
