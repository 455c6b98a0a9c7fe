//! Every API the broker advertises, at every version it advertises, gets a decodable answer to a meaningful
//! request. The codec refuses to encode a field that a version lacks, so an answer built for the newest version
//! can break an older client; this test sends each version the way an older client would.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::TestBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use spate_broker::protocol::api_versions::SUPPORTED;

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

fn batch() -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
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

/// A request an older or newer client would plausibly send, using only fields that exist at `v`.
fn request(
    api: ApiKey,
    v: i16,
    topic: &str,
    topic_id: uuid::Uuid,
    scratch: &str,
    partitions_next: i32,
) -> Option<RequestKind> {
    use RequestKind as R;
    Some(match api {
        ApiKey::ApiVersions => R::ApiVersions(if v >= 3 {
            ApiVersionsRequest::default().with_client_software_name(s("matrix")).with_client_software_version(s("1"))
        } else {
            ApiVersionsRequest::default()
        }),
        ApiKey::Metadata => R::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name(topic))),
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("__consumer_offsets"))),
        ]))),
        ApiKey::Produce if v >= 3 => {
            R::Produce(ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(if v < 13 { name(topic) } else { name("") })
                    .with_topic_id(if v >= 13 { topic_id } else { uuid::Uuid::nil() })
                    .with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_index(0).with_records(Some(batch())),
                ]),
            ]))
        }
        ApiKey::Produce => return None,
        ApiKey::Fetch => R::Fetch(
            FetchRequest::default().with_max_wait_ms(0).with_min_bytes(0).with_max_bytes(1 << 20).with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(if v < 13 { name(topic) } else { name("") })
                    .with_topic_id(if v >= 13 { topic_id } else { uuid::Uuid::nil() })
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20)]),
            ]),
        ),
        ApiKey::ListOffsets => R::ListOffsets(ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default().with_name(name(topic)).with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1),
            ]),
            list_offsets_request::ListOffsetsTopic::default().with_name(name(topic)).with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default().with_partition_index(0).with_timestamp(0),
            ]),
        ])),
        ApiKey::CreateTopics => {
            R::CreateTopics(CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name(scratch))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("100000")))]),
        ]))
        }
        ApiKey::DeleteTopics => R::DeleteTopics(if v >= 6 {
            DeleteTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![delete_topics_request::DeleteTopicState::default().with_name(Some(name(scratch)))])
        } else {
            DeleteTopicsRequest::default().with_timeout_ms(5000).with_topic_names(vec![name(scratch)])
        }),
        ApiKey::CreatePartitions => {
            R::CreatePartitions(CreatePartitionsRequest::default().with_timeout_ms(5000).with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name(topic))
                    .with_count(partitions_next),
            ]))
        }
        ApiKey::DeleteRecords => {
            R::DeleteRecords(DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default().with_name(name(topic)).with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_partition_index(0).with_offset(0),
                ]),
            ]))
        }
        ApiKey::DescribeConfigs => R::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic)),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("1")),
            ])),
        ApiKey::AlterConfigs => R::AlterConfigs(AlterConfigsRequest::default().with_resources(
            vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s(topic))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("200000")))])],
        )),
        ApiKey::IncrementalAlterConfigs => {
            R::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(topic))
                    .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("300000")))]),
            ]))
        }
        ApiKey::DescribeCluster => R::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::InitProducerId => R::InitProducerId(
            InitProducerIdRequest::default()
                .with_transaction_timeout_ms(60000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        ApiKey::FindCoordinator => R::FindCoordinator(if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("matrix-group")])
        } else {
            FindCoordinatorRequest::default().with_key(s("matrix-group"))
        }),
        ApiKey::ListGroups => R::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            R::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![GroupId(s("matrix-group"))]))
        }
        ApiKey::OffsetFetch => R::OffsetFetch(if v >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s("matrix-group")))
            ])
        } else {
            OffsetFetchRequest::default().with_group_id(GroupId(s("matrix-group"))).with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(name(topic))
                    .with_partition_indexes(vec![0]),
            ]))
        }),
        // Stateful group flows (join, sync, heartbeat, leave, commit, delete) are covered by the group tests.
        _ => return None,
    })
}

fn exchange(stream: &mut std::net::TcpStream, api: ApiKey, v: i16, corr: i32, body: &RequestKind) -> ResponseKind {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(v)
        .with_correlation_id(corr)
        .with_client_id(Some(s("matrix")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, api.request_header_version(v)).unwrap();
    body.encode(&mut buf, v).unwrap_or_else(|e| panic!("test cannot encode {api:?} v{v}: {e}"));
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    stream.write_all(&buf).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap_or_else(|e| panic!("{api:?} v{v}: connection closed instead of an answer: {e}"));
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut bytes = Bytes::from(body);
    let header = ResponseHeader::decode(&mut bytes, api.response_header_version(v)).unwrap();
    assert_eq!(header.correlation_id, corr);
    let response =
        ResponseKind::decode(api, &mut bytes, v).unwrap_or_else(|e| panic!("{api:?} v{v}: undecodable answer: {e}"));
    assert_eq!(bytes.remaining(), 0, "{api:?} v{v}: trailing bytes in the answer");
    response
}

#[tokio::test(flavor = "multi_thread")]
async fn every_advertised_version_of_every_api_is_answered() {
    let b = TestBroker::start().await;
    b.create_topic("matrix", 1, &[]).await;
    let topic_id = b.broker.as_ref().unwrap().state().metadata.topic("matrix").unwrap().topic_id;
    let bootstrap = b.bootstrap.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&bootstrap).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let mut corr = 0;
        let mut partitions = 1;
        let mut answered = Vec::new();
        // Create before delete so each version deletes a topic that exists.
        let mut order: Vec<_> = SUPPORTED.to_vec();
        order.sort_by_key(|s| (s.api == ApiKey::DeleteTopics) as u8);
        for supported in order {
            for v in supported.min..=supported.max {
                let scratch = format!("scratch-{v}");
                if supported.api == ApiKey::CreatePartitions {
                    partitions += 1;
                }
                let Some(req) = request(supported.api, v, "matrix", topic_id, &scratch, partitions) else { continue };
                corr += 1;
                let response = exchange(&mut stream, supported.api, v, corr, &req);
                // The data path must not only answer but succeed at every version.
                match &response {
                    ResponseKind::Produce(r) => {
                        let p = &r.responses[0].partition_responses[0];
                        assert_eq!(p.error_code, 0, "Produce v{v}: error {}", p.error_code);
                    }
                    ResponseKind::Fetch(r) => {
                        let p = &r.responses[0].partitions[0];
                        assert_eq!(p.error_code, 0, "Fetch v{v}: error {}", p.error_code);
                        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()), "Fetch v{v}: no records");
                    }
                    _ => {}
                }
                answered.push((supported.api, v));
            }
        }
        answered
    })
    .await
    .unwrap();
    assert!(answered.len() > 60, "only {} api versions exercised", answered.len());
    b.shutdown().await;
}
