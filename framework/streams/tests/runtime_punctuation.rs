//! Punctuation in the runtime: a wall-clock punctuator fires on the stream thread's loop without new input and
//! its output reaches the broker; a stream-time punctuator fires as records advance stream time.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use spate::test::EmbeddedBroker;
use spate_streams::{BoxError, Processor, ProcessorContext, PunctuationType, Record, State, StreamsBuilder};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

/// Counts records; every 200 ms of wall-clock time forwards ("wall", count); every 1000 ms of stream time
/// forwards ("stream", stream time).
#[derive(Default)]
struct Ticker {
    seen: Arc<AtomicI64>,
}

impl Processor<String, String, String, i64> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), BoxError> {
        let seen = self.seen.clone();
        ctx.schedule(Duration::from_millis(200), PunctuationType::WallClockTime, move |ts, ctx| {
            let n = seen.load(Ordering::Relaxed);
            if n > 0 {
                ctx.forward(Record::new("wall".to_string(), n, ts))?;
            }
            Ok(())
        });
        ctx.schedule(Duration::from_millis(1000), PunctuationType::StreamTime, move |ts, ctx| {
            Ok(ctx.forward(Record::new("stream".to_string(), ts, ts))?)
        });
        Ok(())
    }

    fn process(
        &mut self,
        _: Record<String, String>,
        _: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), BoxError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_and_stream_time_punctuators_fire_in_the_runtime() {
    let broker = EmbeddedBroker::builder().topic("ticks-in", 1).topic("ticks-out", 1).start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let builder = StreamsBuilder::new();
    builder.stream::<String, String>("ticks-in").process(Ticker::default, &[]).to("ticks-out");
    let streams = start(builder.build(), config(&broker, "ticks", dir.path())).await;
    wait_for_state(&streams, State::Running).await;
    for ts in [1_000i64, 1_500, 2_600] {
        let t: spate::KafkaTemplate<String, String> = broker.template();
        t.send_record(spate::ProducerRecord::new("ticks-in", "x".to_string()).key("k".to_string()).timestamp(ts))
            .await
            .unwrap();
    }
    // Stream time 1000 punctuates at 1000 (first record), then at 2600 (schedule 2000 passed).
    // Wall clock: at least one ("wall", 3) after all three were processed, with no further input.
    let deadline = std::time::Instant::now() + WAIT;
    let (mut stream_ticks, mut wall_done) = (Vec::new(), false);
    while !(wall_done && stream_ticks.len() >= 2) {
        assert!(std::time::Instant::now() < deadline, "punctuations missing: {stream_ticks:?}, wall {wall_done}");
        let out = read(broker.bootstrap_servers(), "ticks-out", 1, false).await;
        stream_ticks = out.iter().filter(|o| o.key_str() == "stream").map(Out::value_i64).collect();
        wall_done = out.iter().any(|o| o.key_str() == "wall" && o.value_i64() == 3);
    }
    assert_eq!(stream_ticks[..2], [1_000, 2_600]);
    close(streams).await;
}
