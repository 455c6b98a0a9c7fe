//! The classic group coordinator, following Apache Kafka's `GroupCoordinator`: join and sync phases, generations,
//! leader election, protocol selection, heartbeats and session timeouts, static membership, committed offsets.
//!
//! All groups sit behind one lock that is never held across an `.await`. Every operation decides under the
//! lock and leaves effects behind: an answer sent on a oneshot (parked JoinGroup and SyncGroup answers are
//! completed later, when the rebalance moves on), records queued to `__consumer_offsets` whose completion
//! re-takes the lock, and deadlines that the timer task (`run_timers`) acts on, as Kafka's purgatories do.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;
use uuid::Uuid;

use super::group::{join_error, sync_error, CommittedOffset, Group, GroupState, JoinTimer, Member};
use super::group_metadata_manager::{AppendFailure, GroupMetadataManager, Replayed, WriteRequest};
use super::internal_topic::TxnProducer;
use super::offsets_topic;
use crate::config::BrokerConfig;
use crate::protocol::handlers::{now_ms, str_bytes};

/// Kafka's `group.min.session.timeout.ms` default.
pub const GROUP_MIN_SESSION_TIMEOUT_MS: i32 = 6_000;
/// Kafka's `group.max.session.timeout.ms` default.
pub const GROUP_MAX_SESSION_TIMEOUT_MS: i32 = 1_800_000;
/// Kafka's `offset.metadata.max.bytes` default.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// Kafka's `offsets.retention.check.interval.ms` default.
pub const OFFSETS_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// A new member waiting in a join phase is dropped after this long (Kafka's `NewMemberJoinTimeoutMs`), so
/// clients that gave up on a long rebalance do not pile up as members.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// What JoinGroup asks for, after the handler has resolved version differences.
pub struct JoinParams {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v4+: a member without an id gets one with MEMBER_ID_REQUIRED and must join again with it.
    pub require_known_member_id: bool,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub reason: Option<String>,
}

pub struct SyncParams {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// One partition's offset in an OffsetCommit.
pub struct OffsetToCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// A group as ListGroups shows it.
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// A member as DescribeGroups shows it.
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct GroupDescription {
    pub state: GroupState,
    pub generation_id: i32,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<MemberDescription>,
}

/// One committed offset as OffsetFetch returns it.
pub struct FetchedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: Option<CommittedOffset>,
    /// Asked with `require_stable` while a commit of this partition is pending: UNSTABLE_OFFSET_COMMIT.
    pub unstable: bool,
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    config: Arc<BrokerConfig>,
    groups: Mutex<HashMap<String, Group>>,
    manager: OnceLock<GroupMetadataManager>,
    /// Wakes the timer task when a deadline earlier than the one it sleeps towards was set.
    wake: Notify,
}

fn session_timeout(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

fn store_error(e: AppendFailure) -> ResponseError {
    match e {
        AppendFailure::TooLarge => ResponseError::UnknownServerError,
        AppendFailure::Unavailable => ResponseError::CoordinatorNotAvailable,
        AppendFailure::ProducerFenced => ResponseError::InvalidProducerEpoch,
    }
}

impl GroupCoordinator {
    pub fn new(config: Arc<BrokerConfig>) -> Self {
        GroupCoordinator { config, groups: Mutex::new(HashMap::new()), manager: OnceLock::new(), wake: Notify::new() }
    }

    /// Installs the persistence layer and the groups replayed from it.
    pub fn load(&self, manager: GroupMetadataManager, replayed: Replayed) {
        let now = Instant::now();
        let now_ms = now_ms();
        let mut groups = self.groups.lock();
        let Replayed { groups: values, mut offsets, pending_txn_offsets } = replayed;
        for (id, value) in values {
            let mut g = Group::from_value(&id, value, now, now_ms);
            if let Some(o) = offsets.remove(&id) {
                g.offsets = o.into_iter().map(|(k, v)| (k, CommittedOffset::from_value(v))).collect();
            }
            groups.insert(id, g);
        }
        // Groups known only by their offsets: simple consumers, or groups whose metadata was never written.
        for (id, o) in offsets {
            let mut g = Group::new(&id, now_ms);
            g.offsets = o.into_iter().map(|(k, v)| (k, CommittedOffset::from_value(v))).collect();
            groups.insert(id, g);
        }
        // Offsets of transactions without a marker yet: the transaction coordinator completes them.
        for (producer_id, by_group) in pending_txn_offsets {
            for (id, o) in by_group {
                let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id, now_ms));
                g.pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .extend(o.into_iter().map(|(k, v)| (k, CommittedOffset::from_value(v))));
            }
        }
        drop(groups);
        let _ = self.manager.set(manager);
        self.wake.notify_one();
    }

    pub fn is_loaded(&self) -> bool {
        self.manager.get().is_some()
    }

    fn write(&self, group_id: &str, request: WriteRequest) {
        match self.manager.get() {
            Some(m) => m.write(group_id, request),
            None => (request.done)(Err(AppendFailure::Unavailable)),
        }
    }

    pub async fn shutdown(&self) {
        self.fail_parked(ResponseError::NotCoordinator);
        if let Some(m) = self.manager.get() {
            m.shutdown().await;
        }
    }

    /// Answers every parked JoinGroup and SyncGroup, as Kafka does when it stops coordinating a group, so
    /// that connections are not held open by a rebalance that will never finish here.
    pub fn fail_parked(&self, error: ResponseError) {
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            for m in g.members.values_mut() {
                if let Some(tx) = m.awaiting_join.take() {
                    let _ = tx.send(join_error(&m.member_id, error));
                }
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.send(sync_error(error));
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // JoinGroup

    pub async fn join_group(self: &Arc<Self>, p: JoinParams) -> JoinGroupResponse {
        let member_id = p.member_id.clone();
        let (tx, rx) = oneshot::channel();
        self.do_join(p, tx);
        // A dropped sender means the parked request was superseded (the member joined again on another
        // connection); this one is no longer being waited for, but answer something the client recovers from.
        rx.await.unwrap_or_else(|_| join_error(&member_id, ResponseError::UnknownMemberId))
    }

    fn do_join(self: &Arc<Self>, p: JoinParams, tx: oneshot::Sender<JoinGroupResponse>) {
        if p.group_id.is_empty() {
            let _ = tx.send(join_error(&p.member_id, ResponseError::InvalidGroupId));
            return;
        }
        if !self.is_loaded() {
            let _ = tx.send(join_error(&p.member_id, ResponseError::CoordinatorLoadInProgress));
            return;
        }
        if p.session_timeout_ms < GROUP_MIN_SESSION_TIMEOUT_MS || p.session_timeout_ms > GROUP_MAX_SESSION_TIMEOUT_MS {
            let _ = tx.send(join_error(&p.member_id, ResponseError::InvalidSessionTimeout));
            return;
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let unknown_member = p.member_id.is_empty();
        if !groups.contains_key(&p.group_id) {
            if !unknown_member {
                // A member id the coordinator never issued for a group it does not know.
                let _ = tx.send(join_error(&p.member_id, ResponseError::UnknownMemberId));
                return;
            }
            groups.insert(p.group_id.clone(), Group::new(&p.group_id, now_ms()));
        }
        let Some(g) = groups.get_mut(&p.group_id) else { return };
        if unknown_member {
            self.do_new_member_join(g, p, tx, now);
        } else {
            self.do_current_member_join(g, p, tx, now);
        }
        // Kafka's checkAndComplete: the join may now have everyone it waits for.
        self.try_complete_join(g, now);
        drop(groups);
        self.wake.notify_one();
    }

    fn do_new_member_join(
        self: &Arc<Self>,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinGroupResponse>,
        now: Instant,
    ) {
        if g.is(GroupState::Dead) {
            let _ = tx.send(join_error("", ResponseError::CoordinatorNotAvailable));
            return;
        }
        if !g.supports_protocols(&p.protocol_type, &p.protocols) {
            let _ = tx.send(join_error("", ResponseError::InconsistentGroupProtocol));
            return;
        }
        let prefix = p.group_instance_id.as_deref().unwrap_or(&p.client_id);
        let new_id = format!("{prefix}-{}", Uuid::new_v4());
        match p.group_instance_id.clone() {
            Some(instance) => match g.static_member_id(&instance).cloned() {
                None => self.add_member_and_rebalance(g, new_id, p, tx, now),
                Some(old_id) => self.update_static_member_and_rebalance(g, &instance, old_id, new_id, p, tx, now),
            },
            None if p.require_known_member_id => {
                // KIP-394: the member must come back with this id; until then it only counts as pending, so a
                // client that never does cannot stall the rebalance past its session timeout.
                g.pending_members.insert(new_id.clone(), now + session_timeout(p.session_timeout_ms));
                tracing::debug!(group = %g.group_id, member = %new_id, "member id required");
                let _ = tx.send(join_error(&new_id, ResponseError::MemberIdRequired));
            }
            None => self.add_member_and_rebalance(g, new_id, p, tx, now),
        }
    }

    fn do_current_member_join(
        self: &Arc<Self>,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinGroupResponse>,
        now: Instant,
    ) {
        let member_id = p.member_id.clone();
        if g.is(GroupState::Dead) {
            let _ = tx.send(join_error(&member_id, ResponseError::CoordinatorNotAvailable));
            return;
        }
        if !g.supports_protocols(&p.protocol_type, &p.protocols) {
            let _ = tx.send(join_error(&member_id, ResponseError::InconsistentGroupProtocol));
            return;
        }
        if g.is_pending_member(&member_id) {
            // The second join of KIP-394, with the id we handed out.
            self.add_member_and_rebalance(g, member_id, p, tx, now);
            return;
        }
        let instance_not_found = p.group_instance_id.as_deref().is_some_and(|i| g.static_member_id(i).is_none());
        if g.is_static_member_fenced(p.group_instance_id.as_deref(), &member_id) {
            let _ = tx.send(join_error(&member_id, ResponseError::FencedInstanceId));
            return;
        }
        if !g.has(&member_id) || instance_not_found {
            let _ = tx.send(join_error(&member_id, ResponseError::UnknownMemberId));
            return;
        }
        let same_metadata = g.members.get(&member_id).is_some_and(|m| m.matches(&p.protocols));
        match g.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(g, p, tx, now),
            GroupState::CompletingRebalance => {
                if same_metadata {
                    // The member missed its JoinGroup answer: give it the current generation again.
                    let resp = self.join_success(g, &member_id);
                    let _ = tx.send(resp);
                } else {
                    self.update_member_and_rebalance(g, p, tx, now);
                }
            }
            GroupState::Stable => {
                if g.is_leader(&member_id) || !same_metadata {
                    // A leader that joins again wants a new assignment (e.g. its metadata changed); so does a
                    // follower whose subscription changed.
                    self.update_member_and_rebalance(g, p, tx, now);
                } else {
                    let mut resp = self.join_success(g, &member_id);
                    resp.members.clear();
                    let _ = tx.send(resp);
                }
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = tx.send(join_error(&member_id, ResponseError::UnknownMemberId));
            }
        }
    }

    /// The JoinGroup answer for `member_id` in the current generation; the leader gets the member list.
    fn join_success(&self, g: &Group, member_id: &str) -> JoinGroupResponse {
        let members = if g.is_leader(member_id) { g.current_member_metadata() } else { Vec::new() };
        JoinGroupResponse::default()
            .with_generation_id(g.generation_id)
            .with_protocol_type(g.protocol_type.clone().map(str_bytes))
            .with_protocol_name(g.protocol_name.clone().map(str_bytes))
            .with_leader(str_bytes(g.leader_id.clone().unwrap_or_default()))
            .with_member_id(str_bytes(member_id))
            .with_members(members)
    }

    fn add_member_and_rebalance(
        self: &Arc<Self>,
        g: &mut Group,
        member_id: String,
        p: JoinParams,
        tx: oneshot::Sender<JoinGroupResponse>,
        now: Instant,
    ) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: p.group_instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type,
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
            session_deadline: now + NEW_MEMBER_JOIN_TIMEOUT,
        };
        // A member arriving during the first rebalance extends the initial delay.
        if g.is(GroupState::PreparingRebalance) && g.generation_id == 0 {
            g.new_member_added = true;
        }
        g.add_member(member);
        let reason = match &p.reason {
            Some(r) => format!(
                "adding new member {member_id} with group instance id {:?}; client reason: {r}",
                g.members.get(&member_id).and_then(|m| m.group_instance_id.clone())
            ),
            None => format!("adding new member {member_id}"),
        };
        self.maybe_prepare_rebalance(g, &reason, now);
    }

    fn update_member_and_rebalance(
        self: &Arc<Self>,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinGroupResponse>,
        now: Instant,
    ) {
        let Some(m) = g.members.get_mut(&p.member_id) else { return };
        m.protocols = p.protocols;
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.session_timeout_ms = p.session_timeout_ms;
        // A join parked earlier by this member is superseded; its client has given up on it.
        m.awaiting_join = Some(tx);
        let reason = format!(
            "updating metadata for member {} during {}{}",
            p.member_id,
            g.state.as_str(),
            p.reason.map(|r| format!("; client reason: {r}")).unwrap_or_default()
        );
        self.maybe_prepare_rebalance(g, &reason, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn update_static_member_and_rebalance(
        self: &Arc<Self>,
        g: &mut Group,
        instance: &str,
        old_id: String,
        new_id: String,
        p: JoinParams,
        tx: oneshot::Sender<JoinGroupResponse>,
        now: Instant,
    ) {
        let current_leader = g.leader_id.clone();
        let Some(m) = g.replace_static_member(instance, &old_id, &new_id) else {
            let _ = tx.send(join_error("", ResponseError::UnknownMemberId));
            return;
        };
        let old_protocols = std::mem::replace(&mut m.protocols, p.protocols);
        let old_timeouts = (m.rebalance_timeout_ms, m.session_timeout_ms);
        m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        m.session_timeout_ms = p.session_timeout_ms;
        m.session_deadline = now + session_timeout(p.session_timeout_ms);
        m.awaiting_join = Some(tx);
        tracing::info!(group = %g.group_id, instance, old_member = %old_id, new_member = %new_id, state = g.state.as_str(), "static member rejoined");
        match g.state {
            GroupState::Stable => {
                if g.protocol_name == g.select_protocol() {
                    // Same protocol: the member takes its place back without a rebalance once the new member
                    // id is persisted. The old leader id is returned so that no member mistakes itself for the
                    // leader and computes an assignment a stable group would not distribute.
                    let assignment: HashMap<String, Bytes> =
                        g.members.values().map(|m| (m.member_id.clone(), m.assignment.clone())).collect();
                    let value = offsets_topic::group_value(&g.to_value(&assignment));
                    let this = self.clone();
                    let group_id = g.group_id.clone();
                    let instance = instance.to_string();
                    let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                        let mut groups = this.groups.lock();
                        let Some(g) = groups.get_mut(&group_id) else { return };
                        match outcome {
                            Err(e) => {
                                // Put the old member id back; the joining instance retries.
                                let tx = g.members.get_mut(&new_id).and_then(|m| m.awaiting_join.take());
                                if let Some(m) = g.replace_static_member(&instance, &new_id, &old_id) {
                                    m.protocols = old_protocols;
                                    (m.rebalance_timeout_ms, m.session_timeout_ms) = old_timeouts;
                                }
                                if let Some(tx) = tx {
                                    let _ = tx.send(join_error("", store_error(e)));
                                }
                            }
                            Ok(()) => {
                                let resp = JoinGroupResponse::default()
                                    .with_generation_id(g.generation_id)
                                    .with_protocol_type(g.protocol_type.clone().map(str_bytes))
                                    .with_protocol_name(g.protocol_name.clone().map(str_bytes))
                                    .with_leader(str_bytes(current_leader.unwrap_or_default()))
                                    .with_member_id(str_bytes(new_id.clone()));
                                if let Some(tx) = g.members.get_mut(&new_id).and_then(|m| m.awaiting_join.take()) {
                                    let _ = tx.send(resp);
                                }
                            }
                        }
                    });
                    self.write(
                        &g.group_id,
                        WriteRequest {
                            records: vec![(offsets_topic::group_key(&g.group_id), Some(value))],
                            producer: None,
                            done,
                        },
                    );
                } else {
                    self.maybe_prepare_rebalance(g, "static member joined with a change of protocol", now);
                }
            }
            GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(
                    g,
                    "static member rejoined while the group was completing a rebalance",
                    now,
                );
            }
            // The join phase in progress will answer it.
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                if let Some(tx) = g.members.get_mut(&new_id).and_then(|m| m.awaiting_join.take()) {
                    let _ = tx.send(join_error(&new_id, ResponseError::UnknownMemberId));
                }
            }
        }
    }

    fn maybe_prepare_rebalance(self: &Arc<Self>, g: &mut Group, reason: &str, now: Instant) {
        if g.can_rebalance() {
            self.prepare_rebalance(g, reason, now);
        }
    }

    fn prepare_rebalance(self: &Arc<Self>, g: &mut Group, reason: &str, now: Instant) {
        // Members waiting for an assignment of the generation being abandoned must join again.
        if g.is(GroupState::CompletingRebalance) {
            reset_and_propagate_assignment_error(g, ResponseError::RebalanceInProgress);
        }
        g.sync_deadline = None;
        let rebalance_timeout = g.rebalance_timeout_ms();
        let timer = if g.is(GroupState::Empty) {
            let delay_ms = self.config.group_initial_rebalance_delay_ms;
            JoinTimer::Initial {
                deadline: now + Duration::from_millis(delay_ms),
                delay_ms,
                remaining_ms: rebalance_timeout.saturating_sub(delay_ms),
            }
        } else {
            JoinTimer::Delayed { deadline: now + Duration::from_millis(rebalance_timeout) }
        };
        g.transition_to(GroupState::PreparingRebalance, now_ms());
        g.join_timer = Some(timer);
        tracing::info!(group = %g.group_id, generation = g.generation_id, members = g.members.len(), reason, "preparing to rebalance");
        self.try_complete_join(g, now);
    }

    /// Ends the join phase early when every member has rejoined (not during the initial delay, which waits
    /// for more members on purpose), or when an initial delay of zero has passed.
    fn try_complete_join(self: &Arc<Self>, g: &mut Group, now: Instant) {
        if !g.is(GroupState::PreparingRebalance) {
            return;
        }
        match g.join_timer {
            Some(JoinTimer::Delayed { .. }) if g.has_all_members_joined() => self.complete_join(g, now),
            Some(JoinTimer::Initial { deadline, .. }) if deadline <= now => self.on_join_timer(g, now),
            _ => {}
        }
    }

    /// The join phase's timer fired.
    fn on_join_timer(self: &Arc<Self>, g: &mut Group, now: Instant) {
        match g.join_timer {
            Some(JoinTimer::Initial { delay_ms, remaining_ms, .. }) if g.new_member_added && remaining_ms != 0 => {
                // Someone joined during the delay: wait once more, within the rebalance timeout.
                g.new_member_added = false;
                let delay = delay_ms.min(remaining_ms);
                g.join_timer = Some(JoinTimer::Initial {
                    deadline: now + Duration::from_millis(delay),
                    delay_ms,
                    remaining_ms: remaining_ms - delay,
                });
            }
            Some(_) => self.complete_join(g, now),
            None => {}
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, start the next generation and
    /// answer every parked JoinGroup.
    fn complete_join(self: &Arc<Self>, g: &mut Group, now: Instant) {
        g.join_timer = None;
        g.new_member_added = false;
        let missing: Vec<String> = g
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %g.group_id, member = %id, "removing member that did not rejoin in time");
            g.remove_member(&id);
        }
        if g.is(GroupState::Dead) {
            return;
        }
        if !g.maybe_elect_new_joined_leader() && !g.members.is_empty() {
            // Only static members that have not rejoined remain: wait again until they do or time out.
            tracing::warn!(group = %g.group_id, "no member rejoined; waiting another rebalance timeout");
            g.join_timer = Some(JoinTimer::Delayed { deadline: now + Duration::from_millis(g.rebalance_timeout_ms()) });
            return;
        }
        g.init_next_generation(now_ms());
        if g.is(GroupState::Empty) {
            tracing::info!(group = %g.group_id, generation = g.generation_id, "group is now empty");
            self.store_group_quietly(g);
            return;
        }
        tracing::info!(
            group = %g.group_id,
            generation = g.generation_id,
            protocol = g.protocol_name.as_deref().unwrap_or(""),
            members = g.members.len(),
            leader = g.leader_id.as_deref().unwrap_or(""),
            "stabilized group"
        );
        let ids: Vec<String> = g.members.keys().cloned().collect();
        for id in ids {
            let resp = self.join_success(g, &id);
            if let Some(m) = g.members.get_mut(&id) {
                if let Some(tx) = m.awaiting_join.take() {
                    let _ = tx.send(resp);
                }
                m.session_deadline = now + session_timeout(m.session_timeout_ms);
                m.is_new = false;
            }
            g.pending_sync_members.insert(id);
        }
        g.sync_deadline = Some(now + Duration::from_millis(g.rebalance_timeout_ms()));
    }

    /// Persists the group as it is (members with their current assignments); failures are only logged.
    fn store_group_quietly(&self, g: &Group) {
        let assignment: HashMap<String, Bytes> =
            g.members.values().map(|m| (m.member_id.clone(), m.assignment.clone())).collect();
        let value = offsets_topic::group_value(&g.to_value(&assignment));
        let group_id = g.group_id.clone();
        let done = Box::new(move |outcome: Result<(), AppendFailure>| {
            if let Err(e) = outcome {
                tracing::warn!(group = %group_id, error = ?e, "failed to persist group metadata");
            }
        });
        self.write(
            &g.group_id,
            WriteRequest { records: vec![(offsets_topic::group_key(&g.group_id), Some(value))], producer: None, done },
        );
    }

    // ---------------------------------------------------------------------------------------------------------
    // SyncGroup

    pub async fn sync_group(self: &Arc<Self>, p: SyncParams) -> SyncGroupResponse {
        let (tx, rx) = oneshot::channel();
        self.do_sync(p, tx);
        rx.await.unwrap_or_else(|_| sync_error(ResponseError::RebalanceInProgress))
    }

    fn do_sync(self: &Arc<Self>, p: SyncParams, tx: oneshot::Sender<SyncGroupResponse>) {
        let fail = |tx: oneshot::Sender<SyncGroupResponse>, e| {
            let _ = tx.send(sync_error(e));
        };
        if p.group_id.is_empty() {
            return fail(tx, ResponseError::InvalidGroupId);
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(&p.group_id) else { return fail(tx, ResponseError::UnknownMemberId) };
        if g.is(GroupState::Dead) {
            return fail(tx, ResponseError::CoordinatorNotAvailable);
        }
        if g.is_static_member_fenced(p.group_instance_id.as_deref(), &p.member_id) {
            return fail(tx, ResponseError::FencedInstanceId);
        }
        if !g.has(&p.member_id) {
            return fail(tx, ResponseError::UnknownMemberId);
        }
        if p.generation_id != g.generation_id {
            return fail(tx, ResponseError::IllegalGeneration);
        }
        if p.protocol_type.as_ref().is_some_and(|t| g.protocol_type.as_ref() != Some(t))
            || p.protocol_name.as_ref().is_some_and(|n| g.protocol_name.as_ref() != Some(n))
        {
            return fail(tx, ResponseError::InconsistentGroupProtocol);
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => fail(tx, ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(tx, ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                if let Some(m) = g.members.get_mut(&p.member_id) {
                    m.awaiting_sync = Some(tx);
                }
                remove_pending_sync_member(g, &p.member_id);
                if g.is_leader(&p.member_id) {
                    let mut assignment: HashMap<String, Bytes> = p.assignments.into_iter().collect();
                    // Members the leader left out get an empty assignment rather than none.
                    for id in g.members.keys() {
                        assignment.entry(id.clone()).or_default();
                    }
                    assignment.retain(|id, _| g.members.contains_key(id));
                    let value = offsets_topic::group_value(&g.to_value(&assignment));
                    let generation = g.generation_id;
                    let group_id = g.group_id.clone();
                    let this = self.clone();
                    let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                        let now = Instant::now();
                        let mut groups = this.groups.lock();
                        let Some(g) = groups.get_mut(&group_id) else { return };
                        // The group may have moved on (a member joined) while the assignment was written.
                        if !g.is(GroupState::CompletingRebalance) || g.generation_id != generation {
                            return;
                        }
                        match outcome {
                            Err(e) => {
                                reset_and_propagate_assignment_error(g, store_error(e));
                                this.maybe_prepare_rebalance(g, "failed to persist the assignment", now);
                            }
                            Ok(()) => {
                                set_and_propagate_assignment(g, &assignment, now);
                                g.transition_to(GroupState::Stable, now_ms());
                                tracing::info!(group = %g.group_id, generation, "assignment received from leader");
                            }
                        }
                        drop(groups);
                        this.wake.notify_one();
                    });
                    self.write(
                        &g.group_id,
                        WriteRequest {
                            records: vec![(offsets_topic::group_key(&g.group_id), Some(value))],
                            producer: None,
                            done,
                        },
                    );
                }
            }
            GroupState::Stable => {
                remove_pending_sync_member(g, &p.member_id);
                let resp = SyncGroupResponse::default()
                    .with_protocol_type(g.protocol_type.clone().map(str_bytes))
                    .with_protocol_name(g.protocol_name.clone().map(str_bytes));
                if let Some(m) = g.members.get_mut(&p.member_id) {
                    m.session_deadline = now + session_timeout(m.session_timeout_ms);
                    let _ = tx.send(resp.with_assignment(m.assignment.clone()));
                }
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Heartbeat and LeaveGroup

    pub fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Outcome {
        if group_id.is_empty() {
            return Some(ResponseError::InvalidGroupId);
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id) else { return Some(ResponseError::UnknownMemberId) };
        if g.is(GroupState::Dead) {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if g.is_static_member_fenced(instance_id, member_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        if !g.has(member_id) {
            return Some(ResponseError::UnknownMemberId);
        }
        if generation_id != g.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        let state = g.state;
        if let Some(m) = g.members.get_mut(member_id) {
            m.session_deadline = now + session_timeout(m.session_timeout_ms);
        }
        match state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => None,
        }
    }

    /// Removes members; `members` are (member id, group instance id). Returns the group-level error, or the
    /// outcome for each member.
    pub fn leave_group(
        self: &Arc<Self>,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Outcome>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group_id) else {
            return Ok(members.iter().map(|_| Some(ResponseError::UnknownMemberId)).collect());
        };
        if g.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut out = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            // An administrator may remove a static member by instance id alone, with an empty member id.
            if !member_id.is_empty() && g.is_static_member_fenced(instance_id.as_deref(), member_id) {
                out.push(Some(ResponseError::FencedInstanceId));
                continue;
            }
            if g.is_pending_member(member_id) {
                g.pending_members.remove(member_id);
                self.try_complete_join(g, now);
                out.push(None);
                continue;
            }
            let target = instance_id
                .as_deref()
                .and_then(|i| g.static_member_id(i).cloned())
                .unwrap_or_else(|| member_id.clone());
            if !g.has(&target) {
                out.push(Some(ResponseError::UnknownMemberId));
                continue;
            }
            tracing::info!(group = %g.group_id, member = %target, "member left the group");
            self.remove_member_and_update_group(g, &target, "member left the group", now);
            out.push(None);
        }
        drop(groups);
        self.wake.notify_one();
        Ok(out)
    }

    fn remove_member_and_update_group(self: &Arc<Self>, g: &mut Group, member_id: &str, reason: &str, now: Instant) {
        // A member parked in a join phase is told to start over, in case its client is still there.
        if let Some(m) = g.members.get_mut(member_id) {
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(join_error("", ResponseError::UnknownMemberId));
            }
            if let Some(tx) = m.awaiting_sync.take() {
                let _ = tx.send(sync_error(ResponseError::UnknownMemberId));
            }
        }
        g.remove_member(member_id);
        match g.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(g, &format!("removing member {member_id}: {reason}"), now)
            }
            GroupState::PreparingRebalance => self.try_complete_join(g, now),
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Offsets

    /// Validates and persists committed offsets. Returns per-offset outcomes in request order, or one error for
    /// all of them.
    pub async fn commit_offsets(
        self: &Arc<Self>,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetToCommit>,
        version: i16,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let (tx, rx) = oneshot::channel();
        {
            let now = Instant::now();
            let mut groups = self.groups.lock();
            if !groups.contains_key(group_id) {
                if generation_id < 0 {
                    // A consumer that does not use group management (assign()) or an admin client: the group
                    // exists only to hold offsets.
                    tracing::info!(group = %group_id, "creating a simple consumer group via manual offset commit");
                    groups.insert(group_id.to_string(), Group::new(group_id, now_ms()));
                } else if version >= 9 {
                    return Err(ResponseError::GroupIdNotFound);
                } else {
                    return Err(ResponseError::IllegalGeneration);
                }
            }
            let Some(g) = groups.get_mut(group_id) else { return Err(ResponseError::CoordinatorNotAvailable) };
            validate_offset_commit(g, member_id, instance_id, generation_id)?;
            if let Some(m) = g.members.get_mut(member_id) {
                m.session_deadline = now + session_timeout(m.session_timeout_ms);
            }
            if offsets.is_empty() {
                return Ok(());
            }
            let commit_timestamp = now_ms();
            let mut records = Vec::with_capacity(offsets.len());
            let mut committed = Vec::with_capacity(offsets.len());
            for o in offsets {
                let value = CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                    commit_timestamp,
                    expire_timestamp: None,
                };
                records.push((
                    offsets_topic::offset_key(group_id, &o.topic, o.partition),
                    Some(offsets_topic::offset_value(&value.to_value())),
                ));
                *g.pending_commits.entry((o.topic.clone(), o.partition)).or_default() += 1;
                committed.push(((o.topic, o.partition), value));
            }
            let this = self.clone();
            let gid = group_id.to_string();
            let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                let mut groups = this.groups.lock();
                if let Some(g) = groups.get_mut(&gid) {
                    for (tp, value) in committed {
                        if let Some(n) = g.pending_commits.get_mut(&tp) {
                            *n -= 1;
                            if *n == 0 {
                                g.pending_commits.remove(&tp);
                            }
                        }
                        if outcome.is_ok() {
                            g.offsets.insert(tp, value);
                        }
                    }
                }
                let _ = tx.send(outcome);
            });
            self.write(group_id, WriteRequest { records, producer: None, done });
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(AppendFailure::TooLarge)) => Err(ResponseError::InvalidCommitOffsetSize),
            Ok(Err(AppendFailure::Unavailable | AppendFailure::ProducerFenced)) | Err(_) => {
                Err(ResponseError::CoordinatorNotAvailable)
            }
        }
    }

    /// Committed offsets of `group_id`: of the partitions asked for, or of every partition when `wanted` is
    /// `None`. An unknown group has no offsets.
    pub fn fetch_offsets(&self, group_id: &str, wanted: Option<Vec<(String, i32)>>) -> Vec<FetchedOffset> {
        self.fetch_offsets_with(group_id, wanted, false)
    }

    /// [`Self::fetch_offsets`]; with `require_stable` (OffsetFetch v7+, KIP-447) a partition whose offset is still
    /// in flight — a plain commit being written, or a transactional commit whose transaction has not ended — is
    /// marked `unstable` and answered UNSTABLE_OFFSET_COMMIT, so the consumer retries rather than starting from
    /// an offset that is about to change.
    pub fn fetch_offsets_with(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, i32)>>,
        require_stable: bool,
    ) -> Vec<FetchedOffset> {
        let groups = self.groups.lock();
        let g = groups.get(group_id).filter(|g| !g.is(GroupState::Dead));
        let unstable = |tp: &(String, i32)| require_stable && g.is_some_and(|g| g.has_pending_offset_commit(tp));
        match wanted {
            Some(list) => list
                .into_iter()
                .map(|(topic, partition)| {
                    let tp = (topic, partition);
                    let unstable = unstable(&tp);
                    let offset = if unstable { None } else { g.and_then(|g| g.offsets.get(&tp).cloned()) };
                    FetchedOffset { topic: tp.0, partition, offset, unstable }
                })
                .collect(),
            None => {
                let mut all: Vec<FetchedOffset> = g
                    .map(|g| {
                        g.offsets
                            .iter()
                            .map(|((t, p), o)| {
                                let unstable = unstable(&(t.clone(), *p));
                                FetchedOffset {
                                    topic: t.clone(),
                                    partition: *p,
                                    offset: if unstable { None } else { Some(o.clone()) },
                                    unstable,
                                }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                all.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                all
            }
        }
    }

    /// TxnOffsetCommit: validates as Kafka's `doTxnCommitOffsets` and writes the offsets as a transactional batch
    /// of `producer` to the group's partition. Once written they are pending on the producer's transaction;
    /// [`Self::complete_transaction`] makes them committed offsets (COMMIT) or drops them (ABORT).
    #[allow(clippy::too_many_arguments)]
    pub async fn commit_transactional_offsets(
        self: &Arc<Self>,
        group_id: &str,
        producer: TxnProducer,
        generation_id: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: Vec<OffsetToCommit>,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        if !self.is_loaded() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut groups = self.groups.lock();
            // Kafka creates an empty group for offsets committed by a producer that is not in the group.
            let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id, now_ms()));
            validate_txn_offset_commit(g, member_id, instance_id, generation_id)?;
            if offsets.is_empty() {
                return Ok(());
            }
            let commit_timestamp = now_ms();
            let mut records = Vec::with_capacity(offsets.len());
            let mut committed = Vec::with_capacity(offsets.len());
            for o in offsets {
                let value = CommittedOffset {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: o.metadata,
                    commit_timestamp,
                    expire_timestamp: None,
                };
                records.push((
                    offsets_topic::offset_key(group_id, &o.topic, o.partition),
                    Some(offsets_topic::offset_value(&value.to_value())),
                ));
                *g.pending_commits.entry((o.topic.clone(), o.partition)).or_default() += 1;
                committed.push(((o.topic, o.partition), value));
            }
            let this = self.clone();
            let gid = group_id.to_string();
            let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                let mut groups = this.groups.lock();
                if let Some(g) = groups.get_mut(&gid) {
                    for (tp, value) in committed {
                        if let Some(n) = g.pending_commits.get_mut(&tp) {
                            *n -= 1;
                            if *n == 0 {
                                g.pending_commits.remove(&tp);
                            }
                        }
                        if outcome.is_ok() {
                            g.pending_txn_offsets.entry(producer.producer_id).or_default().insert(tp, value);
                        }
                    }
                }
                let _ = tx.send(outcome);
            });
            self.write(group_id, WriteRequest { records, producer: Some(producer), done });
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(AppendFailure::TooLarge)) => Err(ResponseError::InvalidCommitOffsetSize),
            Ok(Err(AppendFailure::ProducerFenced)) => Err(ResponseError::InvalidProducerEpoch),
            Ok(Err(AppendFailure::Unavailable)) | Err(_) => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// The transaction of `producer_id` ended and its marker is written to `__consumer_offsets` partition
    /// `offsets_partition` (Kafka's `onTransactionCompleted`): its pending offsets in the groups of that partition
    /// become committed offsets on COMMIT and are dropped on ABORT.
    pub fn complete_transaction(&self, producer_id: i64, offsets_partition: i32, commit: bool) {
        let Some(manager) = self.manager.get() else { return };
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            if g.pending_txn_offsets.is_empty() || manager.partition_for(&g.group_id) != offsets_partition {
                continue;
            }
            if let Some(offsets) = g.pending_txn_offsets.remove(&producer_id) {
                tracing::debug!(group = %g.group_id, producer_id, commit, offsets = offsets.len(), "transactional offsets completed");
                if commit {
                    g.offsets.extend(offsets);
                }
            }
        }
    }

    /// The partition of `__consumer_offsets` that holds `group_id` (AddOffsetsToTxn adds it to a transaction).
    pub fn partition_for(&self, group_id: &str) -> Option<i32> {
        self.manager.get().map(|m| m.partition_for(group_id))
    }

    /// Deletes committed offsets of partitions no member consumes.
    pub async fn delete_offsets(
        self: &Arc<Self>,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<((String, i32), Outcome)>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let (tx, rx) = oneshot::channel();
        let results = {
            let mut groups = self.groups.lock();
            let Some(g) = groups.get_mut(group_id) else { return Err(ResponseError::GroupIdNotFound) };
            match g.state {
                GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
                GroupState::Empty => {}
                _ if g.protocol_type.as_deref() != Some("consumer") => return Err(ResponseError::NonEmptyGroup),
                _ => {}
            }
            let mut results = Vec::with_capacity(partitions.len());
            let mut records = Vec::new();
            let mut removed = Vec::new();
            for tp in partitions {
                if !g.is(GroupState::Empty) && g.is_subscribed_to_topic(&tp.0) {
                    results.push((tp, Some(ResponseError::GroupSubscribedToTopic)));
                    continue;
                }
                if g.offsets.contains_key(&tp) {
                    records.push((offsets_topic::offset_key(group_id, &tp.0, tp.1), None));
                    removed.push(tp.clone());
                }
                results.push((tp, None));
            }
            let this = self.clone();
            let gid = group_id.to_string();
            let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                if outcome.is_ok() {
                    let mut groups = this.groups.lock();
                    if let Some(g) = groups.get_mut(&gid) {
                        for tp in &removed {
                            g.offsets.remove(tp);
                        }
                    }
                }
                let _ = tx.send(outcome);
            });
            self.write(group_id, WriteRequest { records, producer: None, done });
            results
        };
        match rx.await {
            Ok(Ok(())) => Ok(results),
            Ok(Err(e)) => Err(store_error(e)),
            Err(_) => Err(ResponseError::CoordinatorNotAvailable),
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Administration

    pub fn list_groups(&self) -> Vec<GroupListing> {
        let groups = self.groups.lock();
        let mut out: Vec<GroupListing> = groups
            .values()
            .filter(|g| !g.is(GroupState::Dead))
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state,
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// Kafka's `GroupMetadata.summary`: member metadata and assignments only for a stable group.
    pub fn describe_group(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.groups.lock();
        let g = groups.get(group_id).filter(|g| !g.is(GroupState::Dead))?;
        let stable = g.is(GroupState::Stable);
        let protocol = g.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: g.state,
            generation_id: g.generation_id,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol).cloned().unwrap_or_default() } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        })
    }

    /// Deletes empty groups with their offsets. Returns the outcome per group, in request order.
    pub async fn delete_groups(self: &Arc<Self>, group_ids: Vec<String>) -> Vec<(String, Outcome)> {
        let mut waits = Vec::new();
        let mut results = Vec::with_capacity(group_ids.len());
        {
            let mut groups = self.groups.lock();
            for id in group_ids {
                let outcome = match groups.get(&id) {
                    _ if id.is_empty() => Some(ResponseError::InvalidGroupId),
                    None => Some(ResponseError::GroupIdNotFound),
                    Some(g) if g.is(GroupState::Dead) => Some(ResponseError::GroupIdNotFound),
                    Some(g) if !g.is(GroupState::Empty) => Some(ResponseError::NonEmptyGroup),
                    Some(_) => None,
                };
                if outcome.is_none() {
                    if let Some(mut g) = groups.remove(&id) {
                        g.transition_to(GroupState::Dead, now_ms());
                        let mut records: Vec<(Bytes, Option<Bytes>)> =
                            g.offsets.keys().map(|(t, p)| (offsets_topic::offset_key(&id, t, *p), None)).collect();
                        records.push((offsets_topic::group_key(&id), None));
                        let (tx, rx) = oneshot::channel();
                        let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                            let _ = tx.send(outcome);
                        });
                        self.write(&id, WriteRequest { records, producer: None, done });
                        tracing::info!(group = %id, offsets = g.offsets.len(), "deleted group");
                        waits.push((results.len(), rx));
                    }
                }
                results.push((id, outcome));
            }
        }
        for (i, rx) in waits {
            let outcome = match rx.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(store_error(e)),
                Err(_) => Some(ResponseError::CoordinatorNotAvailable),
            };
            if let Some(r) = results.get_mut(i) {
                r.1 = outcome;
            }
        }
        results
    }

    // ---------------------------------------------------------------------------------------------------------
    // Timers

    /// Acts on expired deadlines until shutdown: session timeouts, pending member ids, join phases and sync
    /// phases. Sleeps until the earliest deadline, or until an operation sets an earlier one.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.expire(Instant::now());
            let sleep_until = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep_until(sleep_until) => {}
                _ = self.wake.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => {
                    self.fail_parked(ResponseError::NotCoordinator);
                    return;
                }
            }
        }
    }

    /// Handles every deadline that has passed; returns the next one.
    pub fn expire(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        let mut groups = self.groups.lock();
        let mut next: Option<Instant> = None;
        let mut note = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for g in groups.values_mut() {
            // Members whose session ran out. A member waiting in a rebalance counts as alive (its client
            // cannot heartbeat while parked), except a new member past its join timeout.
            let expired: Vec<String> = g
                .members
                .values_mut()
                .filter(|m| m.session_deadline <= now)
                .filter_map(|m| {
                    if !m.is_new && (m.is_awaiting_join() || m.is_awaiting_sync()) {
                        m.session_deadline = now + session_timeout(m.session_timeout_ms);
                        None
                    } else {
                        Some(m.member_id.clone())
                    }
                })
                .collect();
            for id in expired {
                tracing::info!(group = %g.group_id, member = %id, "member's session timed out");
                self.remove_member_and_update_group(g, &id, "session timeout expired", now);
            }
            let before = g.pending_members.len();
            g.pending_members.retain(|_, deadline| *deadline > now);
            if g.pending_members.len() != before {
                self.try_complete_join(g, now);
            }
            if g.join_timer.is_some_and(|t| t.deadline() <= now) && g.is(GroupState::PreparingRebalance) {
                self.on_join_timer(g, now);
            }
            if g.sync_deadline.is_some_and(|d| d <= now) {
                g.sync_deadline = None;
                self.expire_pending_sync(g, now);
            }
            for m in g.members.values() {
                note(m.session_deadline);
            }
            for d in g.pending_members.values() {
                note(*d);
            }
            if let Some(t) = g.join_timer {
                note(t.deadline());
            }
            if let Some(d) = g.sync_deadline {
                note(d);
            }
        }
        next
    }

    /// Members that joined the generation but never sent SyncGroup are removed and the group rebalances.
    fn expire_pending_sync(self: &Arc<Self>, g: &mut Group, now: Instant) {
        if !matches!(g.state, GroupState::CompletingRebalance | GroupState::Stable) || g.pending_sync_members.is_empty()
        {
            return;
        }
        let pending: Vec<String> = g.pending_sync_members.iter().cloned().collect();
        for id in &pending {
            if let Some(m) = g.members.get_mut(id) {
                if let Some(tx) = m.awaiting_sync.take() {
                    let _ = tx.send(sync_error(ResponseError::UnknownMemberId));
                }
            }
            g.remove_member(id);
        }
        self.prepare_rebalance(g, &format!("removing {pending:?} on pending sync request expiration"), now);
    }

    /// Kafka's offset cleanup: expired offsets get tombstones, and empty groups left without offsets are
    /// deleted with a group tombstone.
    pub fn cleanup_group_metadata(self: &Arc<Self>) {
        let retention_ms = (self.config.offsets_retention_minutes as i64).saturating_mul(60_000);
        let now = now_ms();
        let mut groups = self.groups.lock();
        let mut dead = Vec::new();
        let mut expired_total = 0usize;
        for g in groups.values_mut() {
            let expired: Vec<(String, i32)> = g
                .expired_offsets(now, retention_ms)
                .into_iter()
                .filter(|tp| !g.has_pending_offset_commit(tp))
                .collect();
            let mut records: Vec<(Bytes, Option<Bytes>)> = Vec::with_capacity(expired.len() + 1);
            for tp in &expired {
                g.offsets.remove(tp);
                records.push((offsets_topic::offset_key(&g.group_id, &tp.0, tp.1), None));
            }
            expired_total += expired.len();
            if g.is(GroupState::Empty)
                && g.offsets.is_empty()
                && g.pending_commits.is_empty()
                && g.pending_txn_offsets.is_empty()
            {
                g.transition_to(GroupState::Dead, now);
                records.push((offsets_topic::group_key(&g.group_id), None));
                dead.push(g.group_id.clone());
            }
            if !records.is_empty() {
                let gid = g.group_id.clone();
                let done = Box::new(move |outcome: Result<(), AppendFailure>| {
                    if let Err(e) = outcome {
                        tracing::warn!(group = %gid, error = ?e, "failed to write offset expiration tombstones");
                    }
                });
                self.write(&g.group_id, WriteRequest { records, producer: None, done });
            }
        }
        for id in &dead {
            groups.remove(id);
        }
        if expired_total > 0 || !dead.is_empty() {
            tracing::info!(
                expired_offsets = expired_total,
                removed_groups = dead.len(),
                "removed expired offsets and empty groups"
            );
        }
    }
}

/// The result of one item of a batched request: `None` for success, as the wire's error code 0.
pub type Outcome = Option<ResponseError>;

/// Kafka's `validateOffsetCommit` for a transactional commit: a member id, when given, must be known, and a
/// generation, when given, must be the group's; no REBALANCE_IN_PROGRESS (the producer's transaction decides).
fn validate_txn_offset_commit(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation_id: i32,
) -> Result<(), ResponseError> {
    if g.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
        if g.is_static_member_fenced(instance_id, member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if !member_id.is_empty() && !g.has(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != g.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
    }
    Ok(())
}

/// Kafka's `ClassicGroup.validateOffsetCommit`.
fn validate_offset_commit(
    g: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation_id: i32,
) -> Result<(), ResponseError> {
    if g.is(GroupState::Dead) {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if generation_id < 0 && g.is(GroupState::Empty) {
        // Offsets only: the group is not managed by this coordinator's rebalances.
        return Ok(());
    }
    if generation_id >= 0 || !member_id.is_empty() || instance_id.is_some() {
        if g.is_static_member_fenced(instance_id, member_id) {
            return Err(ResponseError::FencedInstanceId);
        }
        if !g.has(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation_id != g.generation_id {
            return Err(ResponseError::IllegalGeneration);
        }
    } else if !g.is(GroupState::Empty) {
        // No member id and no generation: only accepted while nobody consumes in the group.
        return Err(ResponseError::UnknownMemberId);
    }
    if g.is(GroupState::CompletingRebalance) {
        // The member knows the new generation but has no assignment yet; it should finish syncing first.
        return Err(ResponseError::RebalanceInProgress);
    }
    Ok(())
}

fn remove_pending_sync_member(g: &mut Group, member_id: &str) {
    g.pending_sync_members.remove(member_id);
    if g.pending_sync_members.is_empty() {
        g.sync_deadline = None;
    }
}

/// Clears assignments and answers every parked SyncGroup with `error`.
fn reset_and_propagate_assignment_error(g: &mut Group, error: ResponseError) {
    for m in g.members.values_mut() {
        m.assignment = Bytes::new();
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(sync_error(error));
        }
    }
}

/// Installs the leader's assignment and answers every parked SyncGroup with the member's share.
fn set_and_propagate_assignment(g: &mut Group, assignment: &HashMap<String, Bytes>, now: Instant) {
    let protocol_type = g.protocol_type.clone().map(str_bytes);
    let protocol_name = g.protocol_name.clone().map(str_bytes);
    for m in g.members.values_mut() {
        m.assignment = assignment.get(&m.member_id).cloned().unwrap_or_default();
        if let Some(tx) = m.awaiting_sync.take() {
            let _ = tx.send(
                SyncGroupResponse::default()
                    .with_protocol_type(protocol_type.clone())
                    .with_protocol_name(protocol_name.clone())
                    .with_assignment(m.assignment.clone()),
            );
        }
        m.session_deadline = now + session_timeout(m.session_timeout_ms);
    }
}
