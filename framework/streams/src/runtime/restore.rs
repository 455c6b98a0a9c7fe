//! Rebuilding a task's stores from their changelogs before it processes anything (Kafka's `StoreChangelogReader`,
//! done synchronously per task): in-memory stores from the beginning, persistent stores after their checkpointed
//! offset — or from the beginning, wiped first, when there is no checkpoint (a crash, or any start under
//! exactly-once, since Kafka writes no checkpoint while an exactly-once task runs).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::checkpoint::Checkpoint;
use super::internal_topics::{consumer_config, ChangelogSpec};
use super::kafka_streams::Shared;
use crate::{ProcessingGuarantee, StoreBuilder, StreamTask, StreamsConfig, StreamsError};

const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// A restore that makes no progress for this long fails rather than hanging the thread.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

fn kafka(what: &str, e: KafkaError) -> StreamsError {
    StreamsError::Store { store: what.to_owned(), reason: format!("restoring: {e}") }
}

/// Deletes the files of persistent stores that cannot resume from a checkpoint, so they restore from scratch.
pub(crate) fn wipe_unrecoverable(
    dir: &std::path::Path,
    changelogs: &[&ChangelogSpec],
    checkpoint: &Checkpoint,
    partition: i32,
) -> Result<(), StreamsError> {
    for c in changelogs.iter().filter(|c| c.persistent) {
        if !checkpoint.contains_key(&(c.topic.clone(), partition)) {
            let file = dir.join(format!("{}.redb", c.store));
            match std::fs::remove_file(&file) {
                Ok(()) => {
                    tracing::info!(store = %c.store, path = %file.display(), "no checkpoint: wiped the store to restore it from its changelog")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StreamsError::store(&c.store, format!("cannot wipe {}: {e}", file.display()))),
            }
        }
    }
    Ok(())
}

/// Replays each logged store's changelog partition into the task's store. Returns the last offset restored per
/// changelog partition (the base of the next checkpoint).
pub(crate) fn restore_task(
    task: &StreamTask,
    changelogs: &[&ChangelogSpec],
    checkpoint: &Checkpoint,
    config: &StreamsConfig,
    builders: &HashMap<String, StoreBuilder>,
    resume_all: bool,
    shared: &Shared,
) -> Result<Checkpoint, StreamsError> {
    let partition = task.id().partition;
    let mut restored = Checkpoint::new();
    if changelogs.is_empty() {
        return Ok(restored);
    }
    let mut cc = consumer_config(config);
    cc.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("group.id", format!("{}-restore", config.application_id))
        .set(
            "isolation.level",
            match config.processing_guarantee {
                ProcessingGuarantee::ExactlyOnceV2 => "read_committed",
                ProcessingGuarantee::AtLeastOnce => "read_uncommitted",
            },
        );
    let consumer: BaseConsumer = cc.create().map_err(|e| kafka("restore consumer", e))?;
    let mut count = 0u64;
    // One changelog at a time, so an end-of-partition event is unambiguous.
    for c in changelogs {
        let Some(store) = task.store(&c.store) else { continue };
        let persistent = builders.get(&c.store).is_some_and(StoreBuilder::persistent);
        let key = (c.topic.clone(), partition);
        let (low, high) =
            consumer.fetch_watermarks(&c.topic, partition, WATERMARK_TIMEOUT).map_err(|e| kafka(&c.store, e))?;
        // `resume_all`: the stores come from a standby, which applied the changelog up to its offsets.
        let resumable = persistent || resume_all;
        let from = match checkpoint.get(&key) {
            Some(o) if resumable => (o + 1).max(low),
            _ => low,
        };
        if let Some(o) = checkpoint.get(&key).filter(|_| resumable) {
            restored.insert(key.clone(), *o);
        }
        if from >= high {
            shared.restore_ended(&c.store, &c.topic, partition, 0);
            continue;
        }
        let before = count;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&c.topic, partition, Offset::Offset(from)).map_err(|e| kafka(&c.store, e))?;
        consumer.assign(&tpl).map_err(|e| kafka(&c.store, e))?;
        let mut last_progress = Instant::now();
        loop {
            if last_progress.elapsed() > STALL_TIMEOUT {
                return Err(StreamsError::store(&c.store, format!("restoring {} made no progress for 60 s", c.topic)));
            }
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                // The end (the last stable offset under read_committed): what follows is not committed yet, and
                // an open transaction of a fenced predecessor is aborted by the time this task runs.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(kafka(&c.store, e)),
                Some(Ok(m)) => {
                    last_progress = Instant::now();
                    if let Some(k) = m.key() {
                        store.restore(k, m.payload(), m.timestamp().to_millis().unwrap_or(0))?;
                        count += 1;
                    }
                    restored.insert(key.clone(), m.offset());
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
            }
        }
        shared.restore_ended(&c.store, &c.topic, partition, count - before);
    }
    tracing::info!(task = %task.id(), records = count, "restored stores from their changelogs");
    Ok(restored)
}
