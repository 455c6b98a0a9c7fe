//! Shared helpers for the framework's integration tests: a collector that listeners push into, and waits.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

/// Values seen by a listener, in arrival order.
#[derive(Clone, Default)]
pub struct Seen<T>(pub Arc<Mutex<Vec<T>>>);

impl<T: Clone> Seen<T> {
    pub fn push(&self, v: T) {
        self.0.lock().push(v);
    }
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }
    pub fn get(&self) -> Vec<T> {
        self.0.lock().clone()
    }
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<T> {
        spate::test::wait_until(timeout, &format!("{n} values"), || self.len() >= n)
            .await
            .unwrap_or_else(|e| panic!("{e}; got {}", self.len()));
        self.get()
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub const WAIT: Duration = Duration::from_secs(30);
