//! One classic consumer group, as Kafka's `GroupMetadata` / `MemberMetadata`: its state, generation, members
//! with their protocols and assignments, the leader, and its committed offsets. Only data and the rules that
//! need no I/O live here; `group_coordinator.rs` drives the state machine and `group_metadata_manager.rs`
//! persists it.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::offsets_topic::{self, GroupValue, MemberValue, OffsetValue};
use crate::protocol::handlers::str_bytes;

/// Kafka's classic group states (`GroupState` in `GroupMetadata.scala`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members; the group may still hold committed offsets.
    Empty,
    /// Members are (re)joining; JoinGroup answers are parked until all have joined or the rebalance times out.
    PreparingRebalance,
    /// Joined; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Removed; nothing more may happen to it.
    Dead,
}

impl GroupState {
    /// The name Kafka reports in ListGroups and DescribeGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A committed offset with what OffsetFetch returns beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    pub expire_timestamp: Option<i64>,
}

impl CommittedOffset {
    pub fn to_value(&self) -> OffsetValue {
        OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp,
            expire_timestamp: self.expire_timestamp,
        }
    }

    pub fn from_value(v: OffsetValue) -> Self {
        CommittedOffset {
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: v.metadata,
            commit_timestamp: v.commit_timestamp,
            expire_timestamp: v.expire_timestamp,
        }
    }
}

/// One member of a group.
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    /// The parked JoinGroup answer, while the member waits for the join phase to end.
    pub awaiting_join: Option<oneshot::Sender<JoinGroupResponse>>,
    /// The parked SyncGroup answer, while the member waits for the leader's assignment.
    pub awaiting_sync: Option<oneshot::Sender<SyncGroupResponse>>,
    /// Joined but not yet through a completed join phase; such members cannot heartbeat yet.
    pub is_new: bool,
    /// When the member is evicted unless it heartbeats (or is waiting in a rebalance) before then.
    pub session_deadline: Instant,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols.iter().find(|(name, _)| name == protocol).map(|(_, m)| m)
    }

    /// Same protocols with the same metadata in the same order (Kafka's `MemberMetadata.matches`).
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// The member's most preferred protocol among `candidates`.
    fn vote(&self, candidates: &HashSet<&str>) -> Option<&str> {
        self.protocols.iter().map(|(n, _)| n.as_str()).find(|n| candidates.contains(n))
    }

    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    pub fn is_awaiting_sync(&self) -> bool {
        self.awaiting_sync.is_some()
    }
}

/// The join phase timer of a group in PreparingRebalance (Kafka's `InitialDelayedJoin` / `DelayedJoin`).
#[derive(Debug, Clone, Copy)]
pub enum JoinTimer {
    /// First rebalance of an empty group: wait `group.initial.rebalance.delay.ms` for more members, again each
    /// time one arrives, until the rebalance timeout is used up.
    Initial { deadline: Instant, delay_ms: u64, remaining_ms: u64 },
    /// Complete when every member has rejoined, or at the rebalance timeout.
    Delayed { deadline: Instant },
}

impl JoinTimer {
    pub fn deadline(&self) -> Instant {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Delayed { deadline } => *deadline,
        }
    }
}

/// One group.
pub struct Group {
    pub group_id: String,
    pub state: GroupState,
    /// Wall-clock ms of the last state change; offsets of an empty group expire relative to it.
    pub state_timestamp_ms: i64,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: Option<String>,
    pub members: IndexMap<String, Member>,
    /// group.instance.id -> member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED that have not joined yet, with their expiry.
    pub pending_members: HashMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pub pending_sync_members: HashSet<String>,
    /// A member joined during the initial delay, so the delay is extended.
    pub new_member_added: bool,
    pub join_timer: Option<JoinTimer>,
    /// Members still pending sync at this instant are removed.
    pub sync_deadline: Option<Instant>,
    pub offsets: HashMap<(String, i32), CommittedOffset>,
    /// Offset commits queued to the log but not yet applied, per partition; such offsets do not expire.
    pub pending_commits: HashMap<(String, i32), u32>,
    /// Offsets committed inside transactions (TxnOffsetCommit) whose transaction has not ended: producer id ->
    /// offsets. They become committed offsets when the COMMIT marker is written, and are dropped on ABORT.
    pub pending_txn_offsets: HashMap<i64, HashMap<(String, i32), CommittedOffset>>,
    /// Topics the members of a `consumer` group subscribe to, when their metadata could be read.
    pub subscribed_topics: Option<HashSet<String>>,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Self {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync_members: HashSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_deadline: None,
            offsets: HashMap::new(),
            pending_commits: HashMap::new(),
            pending_txn_offsets: HashMap::new(),
            subscribed_topics: None,
        }
    }

    /// Whether an offset of `tp` is still in flight, plain or transactional: OffsetFetch with `require_stable`
    /// answers UNSTABLE_OFFSET_COMMIT for it (Kafka's `hasPendingOffsetCommitsForTopicPartition`).
    pub fn has_pending_offset_commit(&self, tp: &(String, i32)) -> bool {
        self.pending_commits.contains_key(tp) || self.pending_txn_offsets.values().any(|o| o.contains_key(tp))
    }

    pub fn is(&self, state: GroupState) -> bool {
        self.state == state
    }

    pub fn transition_to(&mut self, state: GroupState, now_ms: i64) {
        tracing::debug!(group = %self.group_id, from = self.state.as_str(), to = state.as_str(), "group state");
        self.state = state;
        self.state_timestamp_ms = now_ms;
    }

    /// A rebalance may start from these states; PreparingRebalance already is one, Dead is final.
    pub fn can_rebalance(&self) -> bool {
        matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty)
    }

    pub fn has(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    pub fn is_pending_member(&self, member_id: &str) -> bool {
        self.pending_members.contains_key(member_id)
    }

    pub fn static_member_id(&self, instance_id: &str) -> Option<&String> {
        self.static_members.get(instance_id)
    }

    /// A request naming `instance_id` with a member id other than the one now registered for it comes from a
    /// fenced (older) instance.
    pub fn is_static_member_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(current) => current != member_id,
            None => false,
        }
    }

    /// Whether a member with these protocols may join: an empty group takes any non-empty protocol list; a
    /// populated one needs the same protocol type and a protocol every current member also supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.is(GroupState::Empty) {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(name, _)| self.members.values().all(|m| m.metadata(name).is_some()))
        }
    }

    pub fn add_member(&mut self, member: Member) {
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member.member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members.insert(instance.clone(), member.member_id.clone());
        }
        self.pending_members.remove(&member.member_id);
        self.members.insert(member.member_id.clone(), member);
    }

    /// Removes a member; a new leader is picked among the rest when it led.
    pub fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.shift_remove(member_id)?;
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync_members.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
        Some(member)
    }

    /// Gives the static member `instance_id` the new id `new_id`; answers any request the old instance has
    /// parked with FENCED_INSTANCE_ID, since that instance has been replaced.
    pub fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) -> Option<&mut Member> {
        let mut member = self.members.shift_remove(old_id)?;
        if let Some(tx) = member.awaiting_join.take() {
            let _ = tx.send(join_error(old_id, kafka_protocol::ResponseError::FencedInstanceId));
        }
        if let Some(tx) = member.awaiting_sync.take() {
            let _ = tx.send(sync_error(kafka_protocol::ResponseError::FencedInstanceId));
        }
        member.member_id = new_id.to_string();
        self.members.insert(new_id.to_string(), member);
        if self.is_leader(old_id) {
            self.leader_id = Some(new_id.to_string());
        }
        if self.pending_sync_members.remove(old_id) {
            self.pending_sync_members.insert(new_id.to_string());
        }
        self.static_members.insert(instance_id.to_string(), new_id.to_string());
        self.members.get_mut(new_id)
    }

    pub fn has_all_members_joined(&self) -> bool {
        self.members.values().all(Member::is_awaiting_join) && self.pending_members.is_empty()
    }

    /// The longest rebalance timeout of any member: how long a join phase may last.
    pub fn rebalance_timeout_ms(&self) -> u64 {
        self.members.values().map(|m| m.rebalance_timeout_ms.max(0) as u64).max().unwrap_or(0)
    }

    /// Kafka's `selectProtocol`: among the protocols every member supports, the one most members list first.
    /// Ties go to the candidate that comes first in the members' preference order.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: HashSet<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| self.members.values().all(|m| m.metadata(n).is_some()))
            .collect();
        let mut votes: IndexMap<&str, usize> = IndexMap::new();
        for m in self.members.values() {
            if let Some(v) = m.vote(&candidates) {
                *votes.entry(v).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(p, _)| p.to_string())
    }

    /// Makes a member that has rejoined the leader when the current one has not (it may be a static member
    /// that is kept without rejoining). False when no member rejoined.
    pub fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else { return false };
        match self.members.get(&leader) {
            Some(m) if m.is_awaiting_join() => true,
            _ => match self.members.values().find(|m| m.is_awaiting_join()) {
                Some(m) => {
                    self.leader_id = Some(m.member_id.clone());
                    true
                }
                None => false,
            },
        }
    }

    /// Starts the next generation after a join phase: CompletingRebalance with a selected protocol, or Empty.
    pub fn init_next_generation(&mut self, now_ms: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = None;
            self.transition_to(GroupState::Empty, now_ms);
        } else {
            self.protocol_name = self.select_protocol();
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition_to(GroupState::CompletingRebalance, now_ms);
        }
        self.pending_sync_members.clear();
    }

    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(offsets_topic::subscribed_topics(m.metadata(protocol)?)?);
        }
        Some(topics)
    }

    /// Whether OffsetDelete must refuse offsets of `topic` because a member still consumes it.
    pub fn is_subscribed_to_topic(&self, topic: &str) -> bool {
        self.subscribed_topics.as_ref().is_some_and(|t| t.contains(topic))
    }

    /// The member list the leader receives in its JoinGroup answer.
    pub fn current_member_metadata(&self) -> Vec<JoinGroupResponseMember> {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        self.members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(str_bytes(m.member_id.clone()))
                    .with_group_instance_id(m.group_instance_id.clone().map(str_bytes))
                    .with_metadata(m.metadata(protocol).cloned().unwrap_or_default())
            })
            .collect()
    }

    /// The record that persists this group with `assignment` (member id -> assignment).
    pub fn to_value(&self, assignment: &HashMap<String, Bytes>) -> GroupValue {
        let protocol = self.protocol_name.as_deref().unwrap_or("");
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(protocol).cloned().unwrap_or_default(),
                    assignment: assignment.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its persisted record, as Kafka does when it loads `__consumer_offsets`: Stable
    /// with its members when it had any (they carry on heartbeating with the same generation), else Empty.
    pub fn from_value(group_id: &str, v: GroupValue, now: Instant, now_ms: i64) -> Self {
        let mut g = Group::new(group_id, now_ms);
        g.generation_id = v.generation;
        g.protocol_type = if v.protocol_type.is_empty() { None } else { Some(v.protocol_type.clone()) };
        g.protocol_name = v.protocol.clone();
        g.state_timestamp_ms = if v.current_state_timestamp >= 0 { v.current_state_timestamp } else { now_ms };
        let protocol = v.protocol.clone().unwrap_or_default();
        for m in v.members {
            if let Some(instance) = &m.group_instance_id {
                g.static_members.insert(instance.clone(), m.member_id.clone());
            }
            let member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocol_type: v.protocol_type.clone(),
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                session_deadline: now + std::time::Duration::from_millis(m.session_timeout_ms.max(0) as u64),
            };
            g.members.insert(m.member_id, member);
        }
        g.leader_id = v.leader.filter(|l| g.members.contains_key(l)).or_else(|| g.members.keys().next().cloned());
        g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }

    /// Offsets that have outlived `retention_ms` at `now_ms`, as Kafka's `GroupMetadata.removeExpiredOffsets`
    /// decides: an empty consumer group loses all offsets once it has been empty that long; a group used only
    /// for offset storage (no protocol type) loses each offset that long after its commit; a stable consumer
    /// group loses offsets of topics no member subscribes to anymore; otherwise nothing expires.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let expired = |base: i64, o: &CommittedOffset| match o.expire_timestamp {
            // v1 values carry their own expiry (clients that set a per-commit retention).
            Some(expire) if expire >= 0 => now_ms >= expire,
            _ => now_ms - base >= retention_ms,
        };
        let pick = |f: &dyn Fn(&(String, i32), &CommittedOffset) -> bool| -> Vec<(String, i32)> {
            self.offsets.iter().filter(|(tp, o)| f(tp, o)).map(|(tp, _)| tp.clone()).collect()
        };
        match (&self.protocol_type, self.state) {
            (Some(_), GroupState::Empty) => pick(&|_, o| expired(self.state_timestamp_ms, o)),
            (Some(t), GroupState::Stable) if t == "consumer" => match &self.subscribed_topics {
                Some(subscribed) => pick(&|tp, o| !subscribed.contains(&tp.0) && expired(o.commit_timestamp, o)),
                None => Vec::new(),
            },
            (None, _) => pick(&|_, o| expired(o.commit_timestamp, o)),
            _ => Vec::new(),
        }
    }
}

/// A JoinGroup answer carrying only an error, as Kafka's `JoinGroupResult(memberId, error)`.
pub fn join_error(member_id: &str, error: kafka_protocol::ResponseError) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error.code())
        .with_generation_id(-1)
        .with_member_id(str_bytes(member_id))
        .with_leader(str_bytes(""))
}

pub fn sync_error(error: kafka_protocol::ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(error.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            member_id: id.into(),
            group_instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout_ms: 1000,
            session_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: protocols.iter().map(|p| (p.to_string(), Bytes::from_static(b"m"))).collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: true,
            session_deadline: Instant::now(),
        }
    }

    #[test]
    fn protocol_selection_takes_the_most_preferred_common_protocol() {
        let mut g = Group::new("g", 0);
        g.add_member(member("a", &["cooperative-sticky", "range"]));
        g.add_member(member("b", &["range", "cooperative-sticky"]));
        g.add_member(member("c", &["range", "roundrobin"]));
        // Only "range" is supported by all three.
        assert_eq!(g.select_protocol().as_deref(), Some("range"));
        let mut g = Group::new("g", 0);
        g.add_member(member("a", &["custom", "range"]));
        g.add_member(member("b", &["custom", "range"]));
        assert_eq!(g.select_protocol().as_deref(), Some("custom"));
    }

    #[test]
    fn a_populated_group_refuses_a_member_without_a_common_protocol() {
        let mut g = Group::new("g", 0);
        assert!(!g.supports_protocols("consumer", &[]));
        g.add_member(member("a", &["range"]));
        g.transition_to(GroupState::Stable, 0);
        let p = |n: &str| vec![(n.to_string(), Bytes::new())];
        assert!(g.supports_protocols("consumer", &p("range")));
        assert!(!g.supports_protocols("consumer", &p("roundrobin")));
        assert!(!g.supports_protocols("connect", &p("range")));
    }

    #[test]
    fn removing_the_leader_elects_another_member() {
        let mut g = Group::new("g", 0);
        g.add_member(member("a", &["range"]));
        g.add_member(member("b", &["range"]));
        assert!(g.is_leader("a"));
        g.remove_member("a");
        assert!(g.is_leader("b"));
        g.remove_member("b");
        assert_eq!(g.leader_id, None);
    }

    #[test]
    fn static_member_replacement_fences_the_old_instance() {
        let mut g = Group::new("g", 0);
        let mut m = member("old", &["range"]);
        m.group_instance_id = Some("i".into());
        let (tx, mut rx) = oneshot::channel();
        m.awaiting_join = Some(tx);
        g.add_member(m);
        assert!(g.replace_static_member("i", "old", "new").is_some());
        assert!(g.is_leader("new"));
        assert!(g.is_static_member_fenced(Some("i"), "old"));
        assert!(!g.is_static_member_fenced(Some("i"), "new"));
        let answer = rx.try_recv().ok().map(|r| r.error_code);
        assert_eq!(answer, Some(kafka_protocol::ResponseError::FencedInstanceId.code()));
    }

    #[test]
    fn offsets_of_an_empty_group_expire_after_retention_since_it_emptied() {
        let mut g = Group::new("g", 1_000);
        g.protocol_type = Some("consumer".into());
        g.offsets.insert(
            ("t".into(), 0),
            CommittedOffset {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
                expire_timestamp: None,
            },
        );
        assert!(g.expired_offsets(1_500, 1_000).is_empty());
        assert_eq!(g.expired_offsets(2_000, 1_000), vec![("t".to_string(), 0)]);
        // A stable group keeps offsets of subscribed topics.
        g.state = GroupState::Stable;
        g.subscribed_topics = Some(["t".to_string()].into_iter().collect());
        assert!(g.expired_offsets(10_000, 1_000).is_empty());
        g.subscribed_topics = Some(HashSet::new());
        assert_eq!(g.expired_offsets(10_000, 1_000).len(), 1);
    }

    #[test]
    fn simple_group_offsets_expire_from_their_commit_time() {
        let mut g = Group::new("g", 0);
        g.offsets.insert(
            ("t".into(), 0),
            CommittedOffset {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 5_000,
                expire_timestamp: None,
            },
        );
        assert!(g.expired_offsets(5_500, 1_000).is_empty());
        assert_eq!(g.expired_offsets(6_000, 1_000).len(), 1);
    }
}
