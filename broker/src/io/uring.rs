//! The io_uring backend: each storage thread owns a ring and submits a whole round with one `io_uring_enter`.
//!
//! A round's writes (from every partition pinned to this thread) are pushed as `IORING_OP_WRITE` entries and
//! submitted together; short writes are resubmitted for their remainder. Then one `IORING_OP_FSYNC`
//! (`DATASYNC`) per distinct file is submitted together. Writes are not linked to fsyncs: fsyncs are only queued
//! once every write of the round has completed, which is what makes the coalescing correct.
//!
//! Memory safety: the kernel reads each write's buffer and uses its file descriptor until the completion arrives.
//! Buffers and files are owned by the round (`WriteJob`s) and the round waits for every completion before it
//! returns. Should `io_uring_enter` fail for a reason other than an interruption, completions can no longer be
//! trusted to arrive: the ring is then poisoned, the round's buffers and files are deliberately leaked (so the
//! kernel can never touch freed memory or a reused descriptor), and this thread falls back to `pwrite`.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, types, IoUring, Probe};

use super::std_fs::StdExecutor;
use super::{Executor, WriteJob};

/// Submission queue entries per ring; a round of up to `MAX_BATCH` requests is fed through it in waves.
const RING_ENTRIES: u32 = 256;
/// Largest single write submitted; larger buffers are written in several entries.
const MAX_WRITE_LEN: usize = 1 << 30;

/// Checks that io_uring can be set up here and runs WRITE and FSYNC. Fails in seccomp-filtered containers
/// (EPERM/ENOSYS from `io_uring_setup`) and on kernels older than 5.6.
pub fn probe() -> io::Result<()> {
    let mut ring = IoUring::new(8)?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [(opcode::Write::CODE, "WRITE"), (opcode::Fsync::CODE, "FSYNC"), (opcode::Nop::CODE, "NOP")] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(io::ErrorKind::Unsupported, format!("io_uring lacks IORING_OP_{name}")));
        }
    }
    let nop = opcode::Nop::new().build().user_data(7);
    // SAFETY: a NOP references no memory.
    unsafe { ring.submission().push(&nop) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
    ring.submit_and_wait(1)?;
    let cqe = ring.completion().next();
    match cqe {
        Some(cqe) if cqe.user_data() == 7 && cqe.result() >= 0 => Ok(()),
        Some(cqe) => Err(io::Error::from_raw_os_error(-cqe.result())),
        None => Err(io::Error::other("io_uring NOP did not complete")),
    }
}

pub(crate) struct UringExecutor {
    ring: IoUring,
    poisoned: bool,
}

impl UringExecutor {
    pub fn new() -> io::Result<Self> {
        Ok(UringExecutor { ring: IoUring::new(RING_ENTRIES)?, poisoned: false })
    }

    /// Runs `ops` (index, fd, builder) to completion; `resubmit` decides from a completion whether the op is done.
    /// Returns false if the ring failed and was poisoned.
    fn drive(
        &mut self,
        count: usize,
        mut build: impl FnMut(usize) -> io_uring::squeue::Entry,
        mut complete: impl FnMut(usize, i32) -> bool,
    ) -> bool {
        let mut queue: std::collections::VecDeque<usize> = (0..count).collect();
        let mut in_flight = 0usize;
        while !queue.is_empty() || in_flight > 0 {
            while let Some(&i) = queue.front() {
                let entry = build(i).user_data(i as u64);
                // SAFETY: the entry's buffer and fd belong to the round, which outlives every completion we wait
                // for below (or is leaked if the ring fails).
                if unsafe { self.ring.submission().push(&entry) }.is_err() {
                    break;
                }
                queue.pop_front();
                in_flight += 1;
            }
            if let Err(error) = self.ring.submit_and_wait(1) {
                if matches!(error.raw_os_error(), Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::EBUSY)) {
                    continue;
                }
                tracing::error!(%error, "io_uring_enter failed; poisoning the ring and falling back to pwrite");
                self.poisoned = true;
                return false;
            }
            let completions: Vec<(u64, i32)> = self.ring.completion().map(|c| (c.user_data(), c.result())).collect();
            for (user_data, result) in completions {
                in_flight = in_flight.saturating_sub(1);
                let i = user_data as usize;
                if i < count && !complete(i, result) {
                    queue.push_back(i);
                }
            }
        }
        true
    }
}

impl Executor for UringExecutor {
    fn write_all(&mut self, jobs: &[WriteJob]) -> Vec<io::Result<()>> {
        if self.poisoned {
            return StdExecutor.write_all(jobs);
        }
        // Bytes written so far per job; shared by the submit and complete callbacks, never borrowed across them.
        let progress = std::cell::RefCell::new(vec![0usize; jobs.len()]);
        let mut results: Vec<Option<io::Result<()>>> = (0..jobs.len()).map(|_| None).collect();
        for (i, job) in jobs.iter().enumerate() {
            if job.data.is_empty() {
                results[i] = Some(Ok(()));
            }
        }
        let pending: Vec<usize> = (0..jobs.len()).filter(|i| results[*i].is_none()).collect();
        let ok = self.drive(
            pending.len(),
            |k| {
                let job = &jobs[pending[k]];
                let done = progress.borrow()[pending[k]];
                let remaining = &job.data[done..];
                let len = remaining.len().min(MAX_WRITE_LEN) as u32;
                opcode::Write::new(types::Fd(job.file.as_raw_fd()), remaining.as_ptr(), len)
                    .offset(job.offset + done as u64)
                    .build()
            },
            |k, result| {
                let i = pending[k];
                if result < 0 {
                    if result == -libc::EINTR || result == -libc::EAGAIN {
                        return false;
                    }
                    results[i] = Some(Err(io::Error::from_raw_os_error(-result)));
                    return true;
                }
                if result == 0 {
                    results[i] = Some(Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")));
                    return true;
                }
                let mut progress = progress.borrow_mut();
                progress[i] += result as usize;
                if progress[i] >= jobs[i].data.len() {
                    results[i] = Some(Ok(()));
                    true
                } else {
                    false
                }
            },
        );
        if !ok {
            leak_round(jobs.iter().map(|j| (j.data.clone(), j.file.clone())).collect());
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("io_uring failed before the write completed"))))
            .collect()
    }

    fn sync_all(&mut self, files: &[Arc<File>]) -> Vec<io::Result<()>> {
        if self.poisoned {
            return StdExecutor.sync_all(files);
        }
        let mut results: Vec<Option<io::Result<()>>> = (0..files.len()).map(|_| None).collect();
        let ok = self.drive(
            files.len(),
            |i| opcode::Fsync::new(types::Fd(files[i].as_raw_fd())).flags(types::FsyncFlags::DATASYNC).build(),
            |i, result| {
                if result == -libc::EINTR || result == -libc::EAGAIN {
                    return false;
                }
                results[i] = Some(if result < 0 { Err(io::Error::from_raw_os_error(-result)) } else { Ok(()) });
                true
            },
        );
        if !ok {
            leak_round(files.iter().map(|f| (bytes::Bytes::new(), f.clone())).collect());
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(io::Error::other("io_uring failed before the fsync completed"))))
            .collect()
    }
}

/// Keeps buffers and descriptors alive forever: after a ring failure the kernel may still use them.
fn leak_round(items: Vec<(bytes::Bytes, Arc<File>)>) {
    std::mem::forget(items);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn large_and_many_writes_complete_in_one_round() {
        if let Err(e) = probe() {
            eprintln!("skipping: io_uring unavailable: {e}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = Arc::new(
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(dir.path().join("f"))
                .unwrap(),
        );
        let mut exec = UringExecutor::new().unwrap();
        // More jobs than ring entries exercises the refill path.
        let jobs: Vec<WriteJob> = (0..600u64)
            .map(|i| WriteJob {
                file: file.clone(),
                offset: i * 100,
                data: bytes::Bytes::from(vec![(i % 250) as u8; 100]),
            })
            .collect();
        assert!(exec.write_all(&jobs).iter().all(|r| r.is_ok()));
        assert!(exec.sync_all(std::slice::from_ref(&file)).iter().all(|r| r.is_ok()));
        let mut buf = vec![0u8; 60_000];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(buf[59_999], (599 % 250) as u8);
        assert_eq!(buf[100], 1);
    }
}
