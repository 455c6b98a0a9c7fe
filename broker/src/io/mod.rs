//! Storage backends: where the partition log's writes and fsyncs are executed.
//!
//! A [`Storage`] is a small set of storage threads (1 or 2). Every partition is pinned to one of them (its
//! *shard*), so one partition's writes execute in the order they were queued. A storage thread takes everything
//! queued since its last round (up to [`MAX_BATCH`] requests, from any number of partitions), executes all the
//! writes together, then one fsync per distinct file for the writes that asked for durability and the explicit
//! sync requests — group commit: many partitions' `flush.messages=1` appends cost one round of fsyncs.
//!
//! How a round is executed is the backend's business: [`uring`] submits every write in one `io_uring_enter` and
//! then every fsync in another; [`std_fs`] issues `pwrite` / `fdatasync` one by one from the same thread. Both
//! share the batching and fsync coalescing here, so their semantics are identical. Reads do not come here: the log
//! reads with `pread` on tokio's blocking pool, served from the page cache (see the README).
//!
//! Async callers (tokio) await each request through a oneshot channel.

pub mod std_fs;
pub mod uring;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::config::StorageBackendKind;

/// Most requests a storage thread takes into one round.
pub const MAX_BATCH: usize = 256;

/// One positional write.
pub(crate) struct WriteJob {
    pub file: Arc<File>,
    pub offset: u64,
    pub data: Bytes,
}

/// Executes one round of a storage thread.
pub(crate) trait Executor: Send + 'static {
    /// Writes every job completely (retrying short writes); one result per job, in order.
    fn write_all(&mut self, jobs: &[WriteJob]) -> Vec<io::Result<()>>;
    /// `fdatasync`s every file; one result per file, in order.
    fn sync_all(&mut self, files: &[Arc<File>]) -> Vec<io::Result<()>>;
}

enum IoRequest {
    Write { job: WriteJob, sync: bool, done: oneshot::Sender<io::Result<()>> },
    Sync { file: Arc<File>, done: oneshot::Sender<io::Result<()>> },
    Stop,
}

struct StorageThread {
    tx: mpsc::Sender<IoRequest>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

/// The running storage backend: its storage threads and their queues.
pub struct Storage {
    name: &'static str,
    threads: Vec<StorageThread>,
}

impl Storage {
    /// Starts `threads` storage threads (at least 1) with the backend `kind` selects. `Auto` probes io_uring and
    /// falls back to std with a warning; `IoUring` fails when the probe does.
    pub fn start(kind: StorageBackendKind, threads: usize) -> io::Result<Storage> {
        let use_uring = match kind {
            StorageBackendKind::Std => false,
            StorageBackendKind::IoUring => {
                uring::probe()?;
                true
            }
            StorageBackendKind::Auto => match uring::probe() {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "io_uring is unavailable; using the portable std::fs storage backend");
                    false
                }
            },
        };
        let mut started = Vec::new();
        for index in 0..threads.max(1) {
            let executor: Box<dyn Executor> =
                if use_uring { Box::new(uring::UringExecutor::new()?) } else { Box::new(std_fs::StdExecutor) };
            let (tx, rx) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name(format!("spate-storage-{index}"))
                .spawn(move || run_storage_thread(rx, executor))?;
            started.push(StorageThread { tx, handle: Mutex::new(Some(handle)) });
        }
        let name = if use_uring { "io_uring" } else { "std" };
        tracing::info!(backend = name, threads = started.len(), "storage backend started");
        Ok(Storage { name, threads: started })
    }

    /// "io_uring" or "std".
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Writes `data` at `offset` of `file` on storage thread `shard`, then `fdatasync`s the file when `sync`.
    pub async fn write_at(
        &self,
        shard: usize,
        file: Arc<File>,
        offset: u64,
        data: Bytes,
        sync: bool,
    ) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(shard, IoRequest::Write { job: WriteJob { file, offset, data }, sync, done })?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// `fdatasync`s `file` on storage thread `shard`, coalesced with other syncs of the same file in that round.
    pub async fn sync(&self, shard: usize, file: Arc<File>) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(shard, IoRequest::Sync { file, done })?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Stops every storage thread after it has finished what was queued before. Later requests fail.
    pub fn shutdown(&self) {
        for thread in &self.threads {
            let _ = thread.tx.send(IoRequest::Stop);
        }
        for thread in &self.threads {
            if let Some(handle) = thread.handle.lock().take() {
                if handle.join().is_err() {
                    tracing::error!("a storage thread panicked");
                }
            }
        }
    }

    fn send(&self, shard: usize, request: IoRequest) -> io::Result<()> {
        let thread = &self.threads[shard % self.threads.len()];
        thread.tx.send(request).map_err(|_| stopped())
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn stopped() -> io::Error {
    io::Error::other("storage backend is stopped")
}

/// io::Error is not Clone; one fsync result answers several waiters.
pub(crate) fn clone_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

fn run_storage_thread(rx: mpsc::Receiver<IoRequest>, mut executor: Box<dyn Executor>) {
    loop {
        let first = match rx.recv() {
            Ok(IoRequest::Stop) | Err(_) => return,
            Ok(request) => request,
        };
        let mut round = vec![first];
        let mut stop = false;
        while round.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(IoRequest::Stop) => {
                    stop = true;
                    break;
                }
                Ok(request) => round.push(request),
                Err(_) => break,
            }
        }
        execute_round(executor.as_mut(), round);
        if stop {
            return;
        }
    }
}

fn execute_round(executor: &mut dyn Executor, round: Vec<IoRequest>) {
    let mut jobs = Vec::new();
    let mut write_waiters = Vec::new();
    let mut sync_waiters = Vec::new();
    for request in round {
        match request {
            IoRequest::Write { job, sync, done } => {
                write_waiters.push((sync, done));
                jobs.push(job);
            }
            IoRequest::Sync { file, done } => sync_waiters.push((file, done)),
            IoRequest::Stop => {}
        }
    }
    let write_results = if jobs.is_empty() { Vec::new() } else { executor.write_all(&jobs) };

    // One fsync per distinct file, after every write of the round has landed.
    let mut to_sync: Vec<Arc<File>> = Vec::new();
    let mut slot_of: HashMap<i32, usize> = HashMap::new();
    let mut want = |file: &Arc<File>| -> usize {
        *slot_of.entry(file.as_raw_fd()).or_insert_with(|| {
            to_sync.push(file.clone());
            to_sync.len() - 1
        })
    };
    let write_slots: Vec<Option<usize>> = jobs
        .iter()
        .zip(&write_waiters)
        .zip(&write_results)
        .map(|((job, (sync, _)), result)| (*sync && result.is_ok()).then(|| want(&job.file)))
        .collect();
    let sync_slots: Vec<usize> = sync_waiters.iter().map(|(file, _)| want(file)).collect();
    let sync_results = if to_sync.is_empty() { Vec::new() } else { executor.sync_all(&to_sync) };
    let sync_result = |slot: usize| -> io::Result<()> {
        match sync_results.get(slot) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(clone_error(e)),
            None => Err(io::Error::other("fsync result missing")),
        }
    };

    for (((_, done), result), slot) in write_waiters.into_iter().zip(write_results).zip(write_slots) {
        let answer = match (result, slot) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(slot)) => sync_result(slot),
            (Ok(()), None) => Ok(()),
        };
        let _ = done.send(answer);
    }
    for ((_, done), slot) in sync_waiters.into_iter().zip(sync_slots) {
        let _ = done.send(sync_result(slot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    fn backends() -> Vec<StorageBackendKind> {
        let mut kinds = vec![StorageBackendKind::Std];
        match uring::probe() {
            Ok(()) => kinds.push(StorageBackendKind::IoUring),
            Err(e) => eprintln!("skipping io_uring: probe failed: {e}"),
        }
        kinds
    }

    #[tokio::test]
    async fn concurrent_writes_from_many_files_land_and_sync() {
        for kind in backends() {
            let dir = tempfile::tempdir().unwrap();
            let storage = Arc::new(Storage::start(kind, 2).unwrap());
            let mut tasks = Vec::new();
            for f in 0..8 {
                let file = Arc::new(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(true)
                        .read(true)
                        .write(true)
                        .open(dir.path().join(format!("f{f}")))
                        .unwrap(),
                );
                let storage = storage.clone();
                tasks.push(tokio::spawn(async move {
                    for i in 0..20u64 {
                        let data = Bytes::from(vec![(f * 20 + i) as u8; 1000]);
                        storage.write_at(f as usize, file.clone(), i * 1000, data, i % 3 == 0).await.unwrap();
                    }
                    storage.sync(f as usize, file.clone()).await.unwrap();
                    file
                }));
            }
            for (f, task) in tasks.into_iter().enumerate() {
                let file = task.await.unwrap();
                let mut buf = vec![0u8; 20_000];
                file.read_exact_at(&mut buf, 0).unwrap();
                for i in 0..20 {
                    assert!(buf[i * 1000..(i + 1) * 1000].iter().all(|b| *b == (f * 20 + i) as u8), "{kind:?}");
                }
            }
            storage.shutdown();
            assert_eq!(storage.name(), if kind == StorageBackendKind::Std { "std" } else { "io_uring" });
        }
    }

    #[tokio::test]
    async fn write_to_read_only_file_fails_without_killing_the_thread() {
        for kind in backends() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ro");
            std::fs::write(&path, b"x").unwrap();
            let ro = Arc::new(File::open(&path).unwrap());
            let storage = Storage::start(kind, 1).unwrap();
            assert!(storage.write_at(0, ro, 0, Bytes::from_static(b"abc"), true).await.is_err());
            let rw = Arc::new(std::fs::OpenOptions::new().write(true).open(&path).unwrap());
            storage.write_at(0, rw, 0, Bytes::from_static(b"abc"), true).await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        }
    }

    #[tokio::test]
    async fn requests_after_shutdown_fail() {
        let storage = Storage::start(StorageBackendKind::Std, 1).unwrap();
        storage.shutdown();
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(File::create(dir.path().join("f")).unwrap());
        assert!(storage.sync(0, file).await.is_err());
    }
}
