//! The transaction APIs on the wire, request by request, at every version advertised: the whole flow
//! (FindCoordinator, InitProducerId, AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn),
//! the errors Kafka gives (fencing, partitions outside the transaction, timeouts above the maximum, unstable
//! offsets), and the admin views (ListTransactions, DescribeTransactions, DescribeProducers).

#![allow(clippy::unwrap_used)]

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{uuid_like, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use kafka_protocol::ResponseError;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

struct Wire {
    stream: TcpStream,
    corr: i32,
}

impl Wire {
    fn connect(bootstrap: &str) -> Wire {
        let stream = TcpStream::connect(bootstrap).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Wire { stream, corr: 0 }
    }

    fn call(&mut self, api: ApiKey, v: i16, body: RequestKind) -> ResponseKind {
        self.corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(v)
            .with_correlation_id(self.corr)
            .with_client_id(Some(s("txn-wire")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, api.request_header_version(v)).unwrap();
        body.encode(&mut buf, v).unwrap_or_else(|e| panic!("cannot encode {api:?} v{v}: {e}"));
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap_or_else(|e| panic!("{api:?} v{v}: no answer: {e}"));
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut bytes = Bytes::from(body);
        let header = ResponseHeader::decode(&mut bytes, api.response_header_version(v)).unwrap();
        assert_eq!(header.correlation_id, self.corr);
        let r = ResponseKind::decode(api, &mut bytes, v).unwrap_or_else(|e| panic!("{api:?} v{v}: undecodable: {e}"));
        assert_eq!(bytes.remaining(), 0, "{api:?} v{v}: trailing bytes");
        r
    }

    fn init(&mut self, v: i16, tid: &str, timeout_ms: i32, expected: (i64, i16)) -> (i16, i64, i16) {
        let ResponseKind::InitProducerId(r) = self.call(
            ApiKey::InitProducerId,
            v,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(tid))))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(expected.0))
                    .with_producer_epoch(expected.1),
            ),
        ) else {
            unreachable!()
        };
        (r.error_code, r.producer_id.0, r.producer_epoch)
    }

    /// AddPartitionsToTxn in the client form (v0-3) or the batched form (v4); the error of each partition.
    fn add_partitions(&mut self, v: i16, tid: &str, pid: i64, epoch: i16, topic: &str, parts: &[i32]) -> Vec<i16> {
        let topics = vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(parts.to_vec())];
        let request = if v < 4 {
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s(tid)))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(topics)
        } else {
            AddPartitionsToTxnRequest::default().with_transactions(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                    .with_transactional_id(TransactionalId(s(tid)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_topics(topics),
            ])
        };
        let ResponseKind::AddPartitionsToTxn(r) =
            self.call(ApiKey::AddPartitionsToTxn, v, RequestKind::AddPartitionsToTxn(request))
        else {
            unreachable!()
        };
        let topics =
            if v < 4 { r.results_by_topic_v3_and_below } else { r.results_by_transaction[0].topic_results.clone() };
        topics.iter().flat_map(|t| t.results_by_partition.iter().map(|p| p.partition_error_code)).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn produce(
        &mut self,
        v: i16,
        tid: Option<&str>,
        topic: &str,
        partition: i32,
        pid: i64,
        epoch: i16,
        seq: i32,
    ) -> i16 {
        let request = ProduceRequest::default()
            .with_transactional_id(tid.map(|t| TransactionalId(s(t))))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(txn_batch(pid, epoch, seq)))])]);
        let ResponseKind::Produce(r) = self.call(ApiKey::Produce, v, RequestKind::Produce(request)) else {
            unreachable!()
        };
        r.responses[0].partition_responses[0].error_code
    }

    fn end(&mut self, v: i16, tid: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
        let ResponseKind::EndTxn(r) = self.call(
            ApiKey::EndTxn,
            v,
            RequestKind::EndTxn(
                EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(s(tid)))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(commit),
            ),
        ) else {
            unreachable!()
        };
        r.error_code
    }

    /// OffsetFetch v7 with `require_stable`: (error, offset) of one partition.
    fn fetch_stable(&mut self, group: &str, topic: &str, partition: i32) -> (i16, i64) {
        let ResponseKind::OffsetFetch(r) = self.call(
            ApiKey::OffsetFetch,
            7,
            RequestKind::OffsetFetch(
                OffsetFetchRequest::default().with_group_id(GroupId(s(group))).with_require_stable(true).with_topics(
                    Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_indexes(vec![partition])]),
                ),
            ),
        ) else {
            unreachable!()
        };
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    }
}

fn txn_batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
    let record = Record {
        transactional: pid >= 0,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions { version: 2, compression: Compression::None },
    )
    .unwrap();
    buf.freeze()
}

const OK: i16 = 0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_transaction_succeeds_at_every_advertised_version() {
    let b = TestBroker::start().await;
    let topic = format!("wire-{}", uuid_like());
    b.create_topic(&topic, 2, &[]).await;
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = Wire::connect(&bootstrap);
        for v in 0..=4i16 {
            let tid = format!("wire-{v}-{}", uuid_like());
            let group = format!("g-{v}-{}", uuid_like());
            let fc = v.clamp(1, 3);
            let ResponseKind::FindCoordinator(r) = w.call(
                ApiKey::FindCoordinator,
                fc,
                RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(s(&tid)).with_key_type(1)),
            ) else {
                unreachable!()
            };
            assert_eq!((r.error_code, r.node_id.0), (OK, 1), "FindCoordinator v{fc} for a transactional id");
            let (err, pid, epoch) = w.init(v.min(5), &tid, 60_000, (-1, -1));
            assert_eq!((err, epoch), (OK, 0), "InitProducerId v{v}");
            assert_eq!(w.add_partitions(v, &tid, pid, epoch, &topic, &[0]), [OK], "AddPartitionsToTxn v{v}");
            assert_eq!(w.produce(3 + v * 2, Some(&tid), &topic, 0, pid, epoch, 0), OK, "Produce v{}", 3 + v * 2);
            let ResponseKind::AddOffsetsToTxn(r) = w.call(
                ApiKey::AddOffsetsToTxn,
                v,
                RequestKind::AddOffsetsToTxn(
                    AddOffsetsToTxnRequest::default()
                        .with_transactional_id(TransactionalId(s(&tid)))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_group_id(GroupId(s(&group))),
                ),
            ) else {
                unreachable!()
            };
            assert_eq!(r.error_code, OK, "AddOffsetsToTxn v{v}");
            let mut commit = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(&tid)))
                .with_group_id(GroupId(s(&group)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partitions(vec![txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(42)])]);
            if v >= 3 {
                commit = commit.with_generation_id(-1).with_member_id(s(""));
            }
            let ResponseKind::TxnOffsetCommit(r) =
                w.call(ApiKey::TxnOffsetCommit, v, RequestKind::TxnOffsetCommit(commit))
            else {
                unreachable!()
            };
            assert_eq!(r.topics[0].partitions[0].error_code, OK, "TxnOffsetCommit v{v}");
            // Until the transaction ends, the offset is pending: unstable for require_stable readers.
            assert_eq!(w.fetch_stable(&group, &topic, 1), (ResponseError::UnstableOffsetCommit.code(), -1));
            assert_eq!(w.end(v, &tid, pid, epoch, true), OK, "EndTxn v{v}");
            // A retried EndTxn of the same outcome succeeds; the opposite one is INVALID_TXN_STATE once complete.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match w.fetch_stable(&group, &topic, 1) {
                    (OK, 42) => break,
                    other => assert!(Instant::now() < deadline, "offset never became stable: {other:?}"),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // Until CompleteCommit is written the coordinator answers CONCURRENT_TRANSACTIONS, as Kafka does.
            let retried = loop {
                let code = w.end(v, &tid, pid, epoch, true);
                if code != ResponseError::ConcurrentTransactions.code() || Instant::now() > deadline {
                    break code;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            assert_eq!(retried, OK, "retried EndTxn v{v}");
            assert_eq!(w.end(v, &tid, pid, epoch, false), ResponseError::InvalidTxnState.code());
        }
    })
    .await
    .unwrap();
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactional_produce_to_a_partition_outside_the_transaction_is_refused() {
    let b = TestBroker::start().await;
    let topic = format!("outside-{}", uuid_like());
    b.create_topic(&topic, 2, &[]).await;
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = Wire::connect(&bootstrap);
        let tid = format!("outside-{}", uuid_like());
        let (_, pid, epoch) = w.init(4, &tid, 60_000, (-1, -1));
        // No transaction at all yet, then a transaction holding partition 0 only.
        assert_eq!(w.produce(9, Some(&tid), &topic, 1, pid, epoch, 0), ResponseError::InvalidTxnState.code());
        assert_eq!(w.add_partitions(3, &tid, pid, epoch, &topic, &[0]), [OK]);
        assert_eq!(w.produce(10, Some(&tid), &topic, 1, pid, epoch, 0), ResponseError::InvalidTxnState.code());
        assert_eq!(w.produce(11, Some(&tid), &topic, 1, pid, epoch, 0), ResponseError::TransactionAbortable.code());
        assert_eq!(w.produce(9, Some(&tid), &topic, 0, pid, epoch, 0), OK);
        // Unknown partitions fail the AddPartitionsToTxn request as a whole.
        assert_eq!(
            w.add_partitions(3, &tid, pid, epoch, &topic, &[1, 7]),
            [ResponseError::OperationNotAttempted.code(), ResponseError::UnknownTopicOrPartition.code()]
        );
        // Nothing of partition 1 is in the transaction: the refused batches were not written.
        let ResponseKind::ListOffsets(r) = w.call(
            ApiKey::ListOffsets,
            2,
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(TopicName(s(&topic))).with_partitions(
                    vec![
                    list_offsets_request::ListOffsetsPartition::default().with_partition_index(1).with_timestamp(-1),
                ],
                ),
            ])),
        ) else {
            unreachable!()
        };
        assert_eq!(r.topics[0].partitions[0].offset, 0);
    })
    .await
    .unwrap();
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn init_producer_id_bumps_the_epoch_fences_older_epochs_and_honours_kip_360_retries() {
    let b = TestBroker::start().await;
    let topic = format!("epochs-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = Wire::connect(&bootstrap);
        let tid = format!("epochs-{}", uuid_like());
        assert_eq!(w.init(4, &tid, 900_001, (-1, -1)).0, ResponseError::InvalidTransactionTimeout.code());
        assert_eq!(w.init(4, &tid, 60_000, (-1, 3)).0, ResponseError::InvalidRequest.code());
        let (_, pid, e0) = w.init(4, &tid, 60_000, (-1, -1));
        let (_, pid1, e1) = w.init(4, &tid, 60_000, (-1, -1));
        assert_eq!((pid1, e0, e1), (pid, 0, 1), "same producer id, next epoch");
        // The old epoch is fenced: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH for older clients.
        assert_eq!(w.add_partitions(1, &tid, pid, e0, &topic, &[0]), [ResponseError::InvalidProducerEpoch.code()]);
        assert_eq!(w.add_partitions(3, &tid, pid, e0, &topic, &[0]), [ResponseError::ProducerFenced.code()]);
        assert_eq!(
            w.add_partitions(3, &tid, pid + 1000, e1, &topic, &[0]),
            [ResponseError::InvalidProducerIdMapping.code()]
        );
        // KIP-360: the holder of epoch 1 re-initialises with it; a retry of that call gets the same answer.
        assert_eq!(w.init(4, &tid, 60_000, (pid, e1)), (OK, pid, 2));
        assert_eq!(w.init(4, &tid, 60_000, (pid, e1)), (OK, pid, 2));
        assert_eq!(w.init(4, &tid, 60_000, (pid, e0)).0, ResponseError::ProducerFenced.code());
        assert_eq!(w.init(3, &tid, 60_000, (pid, e0)).0, ResponseError::InvalidProducerEpoch.code());
        // InitProducerId during an open transaction aborts it and asks the caller to retry.
        assert_eq!(w.add_partitions(3, &tid, pid, 2, &topic, &[0]), [OK]);
        assert_eq!(w.produce(9, Some(&tid), &topic, 0, pid, 2, 0), OK);
        assert_eq!(w.init(4, &tid, 60_000, (-1, -1)).0, ResponseError::ConcurrentTransactions.code());
        let deadline = Instant::now() + Duration::from_secs(10);
        let (err, _, epoch) = loop {
            let r = w.init(4, &tid, 60_000, (-1, -1));
            if r.0 != ResponseError::ConcurrentTransactions.code() || Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // Epoch 3 fenced the open transaction (its abort marker carries it); the caller gets epoch 4.
        assert_eq!((err, epoch), (OK, 4));
        // The fenced epoch can neither write nor end a transaction.
        assert_eq!(w.add_partitions(3, &tid, pid, 4, &topic, &[0]), [OK]);
        assert_eq!(w.produce(9, Some(&tid), &topic, 0, pid, 2, 1), ResponseError::InvalidProducerEpoch.code());
        assert_eq!(w.end(3, &tid, pid, 2, false), ResponseError::ProducerFenced.code());
        assert_eq!(w.end(1, &tid, pid, 2, false), ResponseError::InvalidProducerEpoch.code());
    })
    .await
    .unwrap();
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn list_and_describe_transactions_and_producers_show_an_open_transaction() {
    let b = TestBroker::start().await;
    let topic = format!("admin-{}", uuid_like());
    b.create_topic(&topic, 1, &[]).await;
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = Wire::connect(&bootstrap);
        let tid = format!("admin-{}", uuid_like());
        let (_, pid, epoch) = w.init(4, &tid, 45_000, (-1, -1));
        assert_eq!(w.produce(9, None, &topic, 0, -1, -1, -1), OK);
        assert_eq!(w.add_partitions(3, &tid, pid, epoch, &topic, &[0]), [OK]);
        assert_eq!(w.produce(9, Some(&tid), &topic, 0, pid, epoch, 0), OK);
        let list = |w: &mut Wire, v: i16, states: &[&str], pids: &[i64], duration: i64| {
            let mut r = ListTransactionsRequest::default()
                .with_state_filters(states.iter().map(|x| s(x)).collect())
                .with_producer_id_filters(pids.iter().map(|p| ProducerId(*p)).collect());
            if v >= 1 {
                r = r.with_duration_filter(duration);
            }
            let ResponseKind::ListTransactions(r) =
                w.call(ApiKey::ListTransactions, v, RequestKind::ListTransactions(r))
            else {
                unreachable!()
            };
            assert_eq!(r.error_code, OK);
            let ids: Vec<(String, String)> = r
                .transaction_states
                .iter()
                .map(|t| (t.transactional_id.0.to_string(), t.transaction_state.to_string()))
                .collect();
            (ids, r.unknown_state_filters.iter().map(|x| x.to_string()).collect::<Vec<_>>())
        };
        let mine = (tid.clone(), "Ongoing".to_string());
        assert!(list(&mut w, 0, &["Ongoing"], &[], -1).0.contains(&mine));
        assert_eq!(list(&mut w, 0, &[], &[pid], -1).0, std::slice::from_ref(&mine));
        assert!(!list(&mut w, 0, &["CompleteCommit"], &[pid], -1).0.contains(&mine));
        assert_eq!(list(&mut w, 0, &["Ongoing", "Bogus"], &[pid], -1).1, ["Bogus"]);
        // "Longer than" is strict (as in Kafka): a transaction begun in this very millisecond has run 0 ms.
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(list(&mut w, 1, &[], &[pid], 0).0, std::slice::from_ref(&mine), "running longer than 0 ms");
        assert!(list(&mut w, 1, &[], &[pid], 3_600_000).0.is_empty(), "not running for an hour");
        let describe = |w: &mut Wire, id: &str| {
            let ResponseKind::DescribeTransactions(r) = w.call(
                ApiKey::DescribeTransactions,
                0,
                RequestKind::DescribeTransactions(
                    DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(id))]),
                ),
            ) else {
                unreachable!()
            };
            r.transaction_states[0].clone()
        };
        let d = describe(&mut w, &tid);
        assert_eq!((d.error_code, d.transaction_state.as_str()), (OK, "Ongoing"));
        assert_eq!((d.producer_id.0, d.producer_epoch, d.transaction_timeout_ms), (pid, epoch, 45_000));
        assert!(d.transaction_start_time_ms > 0);
        assert_eq!(d.topics.len(), 1);
        assert_eq!((d.topics[0].topic.0.as_str(), d.topics[0].partitions.clone()), (topic.as_str(), vec![0]));
        assert_eq!(describe(&mut w, "no-such-id").error_code, ResponseError::TransactionalIdNotFound.code());
        let ResponseKind::DescribeProducers(r) = w.call(
            ApiKey::DescribeProducers,
            0,
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partition_indexes(vec![0, 5]),
            ])),
        ) else {
            unreachable!()
        };
        let parts = &r.topics[0].partitions;
        assert_eq!(parts[1].error_code, ResponseError::UnknownTopicOrPartition.code());
        let producer = parts[0].active_producers.iter().find(|p| p.producer_id.0 == pid).expect("producer listed");
        assert_eq!((producer.producer_epoch, producer.last_sequence, producer.current_txn_start_offset), (0, 0, 1));
        assert_eq!(w.end(4, &tid, pid, epoch, false), OK);
        let deadline = Instant::now() + Duration::from_secs(10);
        while describe(&mut w, &tid).transaction_state.as_str() != "CompleteAbort" {
            assert!(Instant::now() < deadline, "never completed");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(describe(&mut w, &tid).topics.is_empty());
        // The abort marker closed the producer's transaction in the log.
        let ResponseKind::DescribeProducers(r) = w.call(
            ApiKey::DescribeProducers,
            0,
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(TopicName(s(&topic)))
                    .with_partition_indexes(vec![0]),
            ])),
        ) else {
            unreachable!()
        };
        let producer = r.topics[0].partitions[0].active_producers.iter().find(|p| p.producer_id.0 == pid).unwrap();
        assert_eq!(producer.current_txn_start_offset, -1);
    })
    .await
    .unwrap();
    b.shutdown().await;
}
