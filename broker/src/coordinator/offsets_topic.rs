//! The records of `__consumer_offsets`, byte for byte as Apache Kafka writes them, so a data directory moves
//! between Spate and Kafka and Kafka's own tools (`kafka-dump-log --offsets-decoder`) read it.
//!
//! The schemas are Kafka's `group-coordinator` message specs: `OffsetCommitKey` (v0/v1), `OffsetCommitValue`
//! (v0-v4), `GroupMetadataKey` (v2), `GroupMetadataValue` (v0-v4). Each key and value starts with its int16
//! version. Spate writes offset commit key v1 / value v3 and group metadata key v2 / value v3, which is what
//! Kafka 3.x writes and every Kafka since 2.3 reads; it reads every version, including Kafka 4's flexible v4.
//! A tombstone (null value) deletes the key: the committed offset, or the whole group.

use bytes::{BufMut, Bytes, BytesMut};

/// Name of the internal topic, as in Kafka.
pub const TOPIC: &str = "__consumer_offsets";
/// Kafka's `offsets.topic.num.partitions` default.
pub const DEFAULT_PARTITIONS: i32 = 50;
/// Kafka's `offsets.topic.segment.bytes` default: smaller segments than user topics so compaction keeps up.
pub const SEGMENT_BYTES: &str = "104857600";

/// Why a record of `__consumer_offsets` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordFormatError {
    #[error("record truncated while reading {0}")]
    Truncated(&'static str),
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    #[error("negative length {len} for non-nullable {field}")]
    NegativeLength { field: &'static str, len: i64 },
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
}

/// The group that owns `group_id` lives in partition `abs(hashCode(group_id)) % partitions`, Java's
/// `String.hashCode` and Kafka's `Utils.abs`, so a group keeps its partition when the data dir moves to Kafka.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group_id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    // Kafka's Utils.abs maps Integer.MIN_VALUE to 0 rather than overflowing.
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// A decoded record key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// Key version 0 or 1: a committed offset.
    Offset { group: String, topic: String, partition: i32 },
    /// Key version 2: a group's metadata.
    Group { group: String },
    /// A key this coordinator does not keep (Kafka 4's consumer-group and share-group records, versions 3+).
    Other(i16),
}

/// `OffsetCommitValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client did not say (v3+).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in v1, from clients that set a per-commit retention.
    pub expire_timestamp: Option<i64>,
}

/// One member inside `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// `GroupMetadataValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group last changed state; -1 when unknown (value v0/v1).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + group.len() + topic.len());
    b.put_i16(1);
    put_string(&mut b, group);
    put_string(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

pub fn group_key(group: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + group.len());
    b.put_i16(2);
    put_string(&mut b, group);
    b.freeze()
}

/// `OffsetCommitValue` v3 (offset, leader epoch, metadata, commit timestamp).
pub fn offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::with_capacity(26 + v.metadata.len());
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_string(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

/// `GroupMetadataValue` v3 (the first with `group_instance_id`).
pub fn group_value(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::with_capacity(64 + v.members.len() * 128);
    b.put_i16(3);
    put_string(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_string(&mut b, v.protocol.as_deref());
    put_nullable_string(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_string(&mut b, &m.member_id);
        put_nullable_string(&mut b, m.group_instance_id.as_deref());
        put_string(&mut b, &m.client_id);
        put_string(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        b.put_i32(m.subscription.len() as i32);
        b.put_slice(&m.subscription);
        b.put_i32(m.assignment.len() as i32);
        b.put_slice(&m.assignment);
    }
    b.freeze()
}

pub fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordFormatError> {
    let mut r = Reader::new(bytes, false);
    let version = r.i16("key version")?;
    match version {
        0 | 1 => Ok(RecordKey::Offset {
            group: r.string("group")?,
            topic: r.string("topic")?,
            partition: r.i32("partition")?,
        }),
        2 => Ok(RecordKey::Group { group: r.string("group")? }),
        other => Ok(RecordKey::Other(other)),
    }
}

pub fn decode_offset_value(bytes: &[u8]) -> Result<OffsetValue, RecordFormatError> {
    let version = Reader::new(bytes, false).i16("offset value version")?;
    if !(0..=4).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion { what: "OffsetCommitValue", version });
    }
    let mut r = Reader::new(&bytes[2..], version >= 4);
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 { r.i32("leader_epoch")? } else { -1 };
    let metadata = r.string("metadata")?;
    let commit_timestamp = r.i64("commit_timestamp")?;
    let expire_timestamp = if version == 1 { Some(r.i64("expire_timestamp")?) } else { None };
    // v4's trailing tagged fields (topic id) are not needed to rebuild the offset.
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
}

pub fn decode_group_value(bytes: &[u8]) -> Result<GroupValue, RecordFormatError> {
    let version = Reader::new(bytes, false).i16("group value version")?;
    if !(0..=4).contains(&version) {
        return Err(RecordFormatError::UnsupportedVersion { what: "GroupMetadataValue", version });
    }
    let mut r = Reader::new(&bytes[2..], version >= 4);
    let protocol_type = r.string("protocol_type")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp = if version >= 2 { r.i64("current_state_timestamp")? } else { -1 };
    let count = r.array_len("members")?;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = r.string("member_id")?;
        let group_instance_id = if version >= 3 { r.nullable_string("group_instance_id")? } else { None };
        let client_id = r.string("client_id")?;
        let client_host = r.string("client_host")?;
        let session_first = version == 0;
        let (rebalance_timeout_ms, session_timeout_ms) = if session_first {
            let s = r.i32("session_timeout")?;
            (s, s)
        } else {
            (r.i32("rebalance_timeout")?, r.i32("session_timeout")?)
        };
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        r.skip_tagged_fields()?;
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

/// The topics a member of a `consumer` group subscribes to, read from its `ConsumerProtocolSubscription`
/// (int16 version, then the topic array in every version). `None` when the metadata is not that format.
pub fn subscribed_topics(subscription: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader::new(subscription, false);
    let _version = r.i16("subscription version").ok()?;
    let count = r.array_len("topics").ok()?;
    let mut topics = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        topics.push(r.string("topic").ok()?);
    }
    Some(topics)
}

pub(crate) fn put_string(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_string(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(b, s),
        None => b.put_i16(-1),
    }
}

/// Reads Kafka's primitive types, classic or flexible (compact lengths, tagged fields).
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], flexible: bool) -> Self {
        Reader { buf, flexible }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordFormatError> {
        if self.buf.len() < n {
            return Err(RecordFormatError::Truncated(field));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, RecordFormatError> {
        let b = self.take(2, field)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, RecordFormatError> {
        let b = self.take(4, field)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, RecordFormatError> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u64, RecordFormatError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1, field)?[0];
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordFormatError::Truncated(field))
    }

    /// Length of a string or bytes field; `None` for null.
    pub(crate) fn len(&mut self, field: &'static str, wide: bool) -> Result<Option<usize>, RecordFormatError> {
        let len: i64 = if self.flexible {
            self.uvarint(field)? as i64 - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        Ok(if len < 0 { None } else { Some(len as usize) })
    }

    pub(crate) fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, RecordFormatError> {
        match self.len(field, false)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n, field)?;
                std::str::from_utf8(b).map(|s| Some(s.to_string())).map_err(|_| RecordFormatError::Utf8(field))
            }
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, RecordFormatError> {
        self.nullable_string(field)?.ok_or(RecordFormatError::NegativeLength { field, len: -1 })
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordFormatError> {
        match self.len(field, true)? {
            None => Ok(Bytes::new()),
            Some(n) => Ok(Bytes::copy_from_slice(self.take(n, field)?)),
        }
    }

    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, RecordFormatError> {
        let n: i64 = if self.flexible { self.uvarint(field)? as i64 - 1 } else { i64::from(self.i32(field)?) };
        // Each element is at least one byte, so a count beyond what is left is a corrupt record.
        if n < 0 || n as usize > self.buf.len() {
            return Err(RecordFormatError::NegativeLength { field, len: n });
        }
        Ok(n as usize)
    }

    /// An array count that may be null (-1, or 0 in compact form): `None` for null.
    pub(crate) fn nullable_array_len(&mut self, field: &'static str) -> Result<Option<usize>, RecordFormatError> {
        let n: i64 = if self.flexible { self.uvarint(field)? as i64 - 1 } else { i64::from(self.i32(field)?) };
        if n < 0 {
            return Ok(None);
        }
        if n as usize > self.buf.len() {
            return Err(RecordFormatError::NegativeLength { field, len: n });
        }
        Ok(Some(n as usize))
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, RecordFormatError> {
        Ok(self.take(1, field)?[0] as i8)
    }

    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), RecordFormatError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint("tagged fields")?;
        for _ in 0..count {
            let _tag = self.uvarint("tag")?;
            let size = self.uvarint("tag size")? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash_code() {
        // "".hashCode() == 0; "a" == 97; "group" == 98629247 (values from the JVM).
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("a", 50), 97 % 50);
        assert_eq!(partition_for("group", 50), 98629247 % 50);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE, which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Negative hash: "my-consumer-group-1234567".hashCode() is negative on the JVM; abs is taken.
        let p = partition_for("my-consumer-group-1234567", 50);
        assert!((0..50).contains(&p));
    }

    #[test]
    fn offset_key_and_value_round_trip() {
        let key = offset_key("g", "orders", 7);
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 7]);
        assert_eq!(
            decode_key(&key).ok(),
            Some(RecordKey::Offset { group: "g".into(), topic: "orders".into(), partition: 7 })
        );
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp: 1_700_000_000_000,
            expire_timestamp: None,
        };
        assert_eq!(decode_offset_value(&offset_value(&v)).ok(), Some(v));
    }

    #[test]
    fn offset_value_v1_has_expire_timestamp() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i64(5);
        put_string(&mut b, "");
        b.put_i64(10);
        b.put_i64(20);
        let v = decode_offset_value(&b).ok();
        assert_eq!(v.map(|v| (v.offset, v.leader_epoch, v.expire_timestamp)), Some((5, -1, Some(20))));
    }

    #[test]
    fn group_value_round_trips() {
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 123,
            members: vec![MemberValue {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_key(&group_key("g")).ok(), Some(RecordKey::Group { group: "g".into() }));
        assert_eq!(decode_group_value(&group_value(&v)).ok(), Some(v));
    }

    #[test]
    fn flexible_group_value_v4_is_read() {
        // v4: compact strings (length + 1 as uvarint), compact arrays, tagged fields.
        let mut b = BytesMut::new();
        b.put_i16(4);
        b.put_u8(9);
        b.put_slice(b"consumer");
        b.put_i32(2);
        b.put_u8(0); // null protocol
        b.put_u8(0); // null leader
        b.put_i64(-1);
        b.put_u8(1); // no members
        b.put_u8(0); // no tagged fields
        let v = decode_group_value(&b).ok();
        assert_eq!(v.map(|v| (v.protocol_type, v.generation, v.members.len())), Some(("consumer".into(), 2, 0)));
    }

    #[test]
    fn truncated_records_are_errors_not_panics() {
        let v = group_value(&GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: None,
            leader: None,
            current_state_timestamp: 0,
            members: vec![],
        });
        for cut in 0..v.len() {
            assert!(decode_group_value(&v[..cut]).is_err());
        }
        assert!(decode_key(&[0]).is_err());
    }

    #[test]
    fn consumer_subscription_topics_are_read() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(2);
        put_string(&mut b, "a");
        put_string(&mut b, "b");
        b.put_i32(-1); // user data
        assert_eq!(subscribed_topics(&b), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(subscribed_topics(b"x"), None);
    }
}
