//! Starting a broker raises the process's soft open-file limit to the hard limit (as the JVM does for Apache
//! Kafka). A test binary of its own: it lowers the limit of the whole process first.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use spate_broker::{Broker, BrokerConfig};

fn nofile() -> libc::rlimit {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    limit
}

#[tokio::test]
async fn starting_a_broker_raises_the_soft_open_file_limit_to_the_hard_limit() {
    let hard = nofile().rlim_max;
    let low = libc::rlimit { rlim_cur: 256.min(hard), rlim_max: hard };
    // SAFETY: setrlimit only reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    assert_eq!(nofile().rlim_cur, 256.min(hard));

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerConfig::for_tests(dir.path())).await.unwrap();
    // macOS refuses more than OPEN_MAX (10240).
    let expected = if cfg!(target_os = "macos") { hard.min(10_240) } else { hard };
    assert_eq!(nofile().rlim_cur, expected);
    broker.shutdown().await.unwrap();
}
