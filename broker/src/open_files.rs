//! The process's open-file limit. Each log segment holds descriptors and each client connection is one, and the soft
//! limit a login shell gives (often 1024) is far below what the hard limit allows. The JVM raises its soft limit to
//! the hard one at start (`-XX:+MaxFDLimit`, on by default), so Apache Kafka always runs with the hard limit; the
//! broker does the same, where running out would otherwise answer produce requests with KAFKA_STORAGE_ERROR.

use std::io;

/// The soft limit on open files before and after [`raise_to_hard_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now.
    pub now: u64,
}

/// Raises this process's soft limit on open files to its hard limit (at most `OPEN_MAX` on macOS, which refuses
/// more). Never lowers it.
pub fn raise_to_hard_limit() -> io::Result<OpenFileLimit> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit only writes the struct it is given, which lives on this stack frame.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // rlim_t is u64 on Linux and macOS, not on every Unix.
        #[allow(clippy::unnecessary_cast)]
        let (before, hard) = (limit.rlim_cur as u64, limit.rlim_max as u64);
        #[allow(unused_mut)]
        let mut target = hard;
        #[cfg(target_os = "macos")]
        {
            // OPEN_MAX of <sys/syslimits.h>: setrlimit refuses a higher soft limit.
            target = target.min(10_240);
        }
        if target <= before {
            return Ok(OpenFileLimit { before, now: before });
        }
        limit.rlim_cur = target as libc::rlim_t;
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OpenFileLimit { before, now: target })
    }
    #[cfg(not(unix))]
    {
        Err(io::Error::new(io::ErrorKind::Unsupported, "open-file limits are a Unix notion"))
    }
}
