//! Which APIs, at which versions, this broker speaks; and the ApiVersions answer that tells clients so.
//!
//! Ranges follow what Apache Kafka 4.x advertises, clipped to what Spate implements. Two deliberate quirks
//! copied from Kafka: Produce is advertised from v0 although v0-2 are refused when used (KIP-896; older
//! librdkafka turns compression off when Produce v0 is missing). Fetch 13+ and Produce 13 name topics by
//! their persistent topic ids (KIP-516).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One supported API: its key and the inclusive version range we advertise.
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    pub api: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Every API this broker answers, and the versions it advertises.
pub const SUPPORTED: &[Supported] = &[
    Supported { api: ApiKey::Produce, min: 0, max: 13 },
    Supported { api: ApiKey::Fetch, min: 4, max: 17 },
    Supported { api: ApiKey::ListOffsets, min: 1, max: 9 },
    Supported { api: ApiKey::Metadata, min: 0, max: 13 },
    Supported { api: ApiKey::ApiVersions, min: 0, max: 4 },
    Supported { api: ApiKey::CreateTopics, min: 2, max: 7 },
    Supported { api: ApiKey::DeleteTopics, min: 1, max: 6 },
    Supported { api: ApiKey::DeleteRecords, min: 0, max: 2 },
    Supported { api: ApiKey::DescribeConfigs, min: 1, max: 4 },
    Supported { api: ApiKey::AlterConfigs, min: 0, max: 2 },
    Supported { api: ApiKey::CreatePartitions, min: 0, max: 3 },
    Supported { api: ApiKey::IncrementalAlterConfigs, min: 0, max: 1 },
    Supported { api: ApiKey::DescribeCluster, min: 0, max: 1 },
    Supported { api: ApiKey::InitProducerId, min: 0, max: 5 },
    // Consumer groups (coordinator/). OffsetCommit/OffsetFetch stop at v9 (v10 moves to topic ids);
    // ConsumerGroupHeartbeat (KIP-848) is not advertised, see coordinator/README.md.
    Supported { api: ApiKey::FindCoordinator, min: 0, max: 6 },
    Supported { api: ApiKey::JoinGroup, min: 0, max: 9 },
    Supported { api: ApiKey::SyncGroup, min: 0, max: 5 },
    Supported { api: ApiKey::Heartbeat, min: 0, max: 4 },
    Supported { api: ApiKey::LeaveGroup, min: 0, max: 5 },
    Supported { api: ApiKey::OffsetCommit, min: 2, max: 9 },
    Supported { api: ApiKey::OffsetFetch, min: 1, max: 9 },
    Supported { api: ApiKey::ListGroups, min: 0, max: 5 },
    Supported { api: ApiKey::DescribeGroups, min: 0, max: 6 },
    Supported { api: ApiKey::DeleteGroups, min: 0, max: 2 },
    Supported { api: ApiKey::OffsetDelete, min: 0, max: 0 },
    // Transactions (coordinator/transaction_coordinator.rs), transactions V1: EndTxn, AddPartitionsToTxn and
    // TxnOffsetCommit stop at the last version before KIP-890 part 2 (transactions V2) changes their meaning.
    Supported { api: ApiKey::AddPartitionsToTxn, min: 0, max: 4 },
    Supported { api: ApiKey::AddOffsetsToTxn, min: 0, max: 4 },
    Supported { api: ApiKey::EndTxn, min: 0, max: 4 },
    Supported { api: ApiKey::TxnOffsetCommit, min: 0, max: 4 },
    Supported { api: ApiKey::WriteTxnMarkers, min: 1, max: 1 },
    Supported { api: ApiKey::DescribeTransactions, min: 0, max: 0 },
    Supported { api: ApiKey::ListTransactions, min: 0, max: 1 },
    Supported { api: ApiKey::DescribeProducers, min: 0, max: 0 },
];

/// Requests of these versions are advertised but refused (KIP-896).
pub fn refused_at_request_time(api: ApiKey, version: i16) -> bool {
    api == ApiKey::Produce && version < 3
}

/// The advertised range of `api`, if we answer it at all.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED.iter().find(|s| s.api == api).map(|s| (s.min, s.max))
}

/// Whether a request of `api` at `version` can be decoded and answered.
pub fn is_supported(api: ApiKey, version: i16) -> bool {
    matches!(supported_range(api), Some((min, max)) if version >= min && version <= max)
        && !refused_at_request_time(api, version)
}

/// The ApiVersions body: our ranges, with `error_code` as given (UNSUPPORTED_VERSION when the client asked for
/// a version we do not know, per KIP-511, so it can retry with one we do).
pub fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|s| ApiVersion::default().with_api_key(s.api as i16).with_min_version(s.min).with_max_version(s.max))
        .collect();
    ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(api_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_ranges_are_within_what_the_codec_can_decode() {
        for s in SUPPORTED {
            let codec = s.api.valid_versions();
            assert!(s.max <= codec.max, "{:?} advertises v{} but the codec stops at v{}", s.api, s.max, codec.max);
            assert!(s.min <= s.max);
        }
    }

    #[test]
    fn produce_v2_is_advertised_but_refused() {
        assert_eq!(supported_range(ApiKey::Produce), Some((0, 13)));
        assert!(!is_supported(ApiKey::Produce, 2));
        assert!(is_supported(ApiKey::Produce, 3));
    }
}
