//! `spate groups`: list, describe, delete consumer groups and reset their committed offsets, in the manner of
//! Kafka's kafka-consumer-groups.sh, through the Kafka protocol so it works against Spate's broker and any Kafka
//! cluster alike.
//!
//! rdkafka 0.39 has no admin call to list, describe or alter consumer groups, so this uses librdkafka's
//! consumer-side calls on a consumer that carries the group id but never subscribes (so it never joins):
//! `fetch_group_list` (ListGroups, then DescribeGroups) for groups, members and their assignments;
//! `committed_offsets` (OffsetFetch) for committed offsets; `offsets_for_times` (ListOffsets) for the log start,
//! log end and timestamp look-ups; and `commit` (OffsetCommit with generation -1 and no member id, which a
//! coordinator accepts only while the group has no members) to write reset offsets. Deleting uses the Admin
//! API's DeleteGroups.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::groups::GroupInfo;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::client::{describe_error, fetch_metadata, CliContext, CliError, ConnectArgs};

#[derive(Args, Debug)]
pub struct GroupsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Subcommand, Debug)]
enum GroupsCommand {
    /// List consumer groups, one per line (with their state under --state).
    List(ListArgs),
    /// Show a group's state, members with their assignments, and committed offsets with lag per partition.
    Describe(DescribeArgs),
    /// Delete groups that have no active members, with all their committed offsets.
    Delete(DeleteArgs),
    /// Change a group's committed offsets (dry run unless --execute; the group must have no active members).
    ResetOffsets(ResetArgs),
}

/// The states of a classic group, as the coordinator names them.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "PascalCase")]
enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Only groups in these states (comma separated or repeated, any case); prints each group's state too.
    #[arg(long, value_enum, ignore_case = true, value_delimiter = ',', num_args = 0.., value_name = "STATE")]
    state: Option<Vec<GroupState>>,
    /// Print one JSON array of {"group","state"} instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[command(group = ArgGroup::new("which").required(true).args(["groups", "all_groups"]))]
struct DescribeArgs {
    /// Groups to describe.
    groups: Vec<String>,
    /// Describe every consumer group.
    #[arg(long)]
    all_groups: bool,
    /// Print one JSON array instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DeleteArgs {
    /// Groups to delete.
    #[arg(required = true)]
    groups: Vec<String>,
    /// Succeed when a group does not exist.
    #[arg(long)]
    if_exists: bool,
}

#[derive(Args, Debug)]
#[command(
    group = ArgGroup::new("scope").required(true).args(["topic", "all_topics"]),
    group = ArgGroup::new("target").required(true)
        .args(["to_earliest", "to_latest", "to_datetime", "to_offset", "shift_by"]),
)]
struct ResetArgs {
    /// The group whose offsets to reset.
    group: String,
    /// Reset this topic, or only the listed partitions of it (`orders:0,2`). Repeatable.
    #[arg(long, short = 't', value_name = "TOPIC[:P,P]", value_parser = parse_topic_scope)]
    topic: Vec<TopicScope>,
    /// Reset every partition the group has a committed offset for.
    #[arg(long)]
    all_topics: bool,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To the first record with a timestamp at or after this time: `YYYY-MM-DDTHH:MM:SS[.sss][Z|±HH:MM]` (no
    /// zone means UTC) or milliseconds since the epoch. Partitions with no such record go to the log end.
    #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// To this offset (kept within the log start and log end offsets).
    #[arg(long, value_name = "OFFSET", allow_negative_numbers = true)]
    to_offset: Option<i64>,
    /// Move the committed offset by N (negative: back), kept within the log start and log end offsets.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Apply the new offsets. Without it nothing changes on the broker.
    #[arg(long, conflicts_with = "dry_run")]
    execute: bool,
    /// Only show the new offsets (the default).
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
struct TopicScope {
    topic: String,
    /// Empty: every partition.
    partitions: Vec<i32>,
}

fn parse_topic_scope(s: &str) -> Result<TopicScope, String> {
    let (topic, partitions) = match s.split_once(':') {
        None => (s, Vec::new()),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| p.trim().parse::<i32>().ok().filter(|p| *p >= 0))
                .collect::<Option<Vec<i32>>>()
                .ok_or_else(|| format!("expected TOPIC or TOPIC:P,P with partition numbers, got '{s}'"))?;
            (topic, partitions)
        }
    };
    if topic.is_empty() {
        return Err(format!("no topic name in '{s}'"));
    }
    Ok(TopicScope { topic: topic.to_string(), partitions })
}

/// Milliseconds since the epoch, or an ISO-8601 date-time (Kafka's `--to-datetime` format) in UTC unless it
/// carries a zone.
fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("expected YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] or epoch milliseconds, got '{s}'");
    if let Ok(ms) = s.parse::<i64>() {
        return if ms >= 0 { Ok(ms) } else { Err(bad()) };
    }
    let (date, time) = s.split_once('T').ok_or_else(bad)?;
    let mut date_parts = date.splitn(3, '-');
    let next_num = |it: &mut std::str::SplitN<'_, char>, len: usize| -> Result<i64, String> {
        let part = it.next().ok_or_else(bad)?;
        if part.len() != len || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    let year = next_num(&mut date_parts, 4)?;
    let month = next_num(&mut date_parts, 2)?;
    let day = next_num(&mut date_parts, 2)?;
    // The zone: `Z`, `+HH:MM`, `-HH:MM` (or without the colon) after the seconds.
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix('Z') {
        (clock, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (clock, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let hours: i64 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i64 = digits[2..].parse().map_err(|_| bad())?;
        (clock, sign * (hours * 60 + minutes))
    } else {
        (time, 0)
    };
    let (hms, millis) = match clock.split_once('.') {
        None => (clock, 0),
        Some((hms, fraction)) => {
            if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let padded = format!("{fraction:0<3}");
            (hms, padded[..3].parse::<i64>().map_err(|_| bad())?)
        }
    };
    let mut clock_parts = hms.splitn(3, ':');
    let hour = next_num(&mut clock_parts, 2)?;
    let minute = next_num(&mut clock_parts, 2)?;
    let second = next_num(&mut clock_parts, 2)?;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return Err(bad());
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second;
    let ms = (seconds - offset_minutes * 60) * 1_000 + millis;
    if ms < 0 {
        return Err(format!("'{s}' is before 1970"));
    }
    Ok(ms)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub async fn run(args: GroupsArgs) -> Result<()> {
    let connect = args.connect;
    match args.command {
        GroupsCommand::List(a) => tokio::task::spawn_blocking(move || list(&connect, a)).await?,
        GroupsCommand::Describe(a) => tokio::task::spawn_blocking(move || describe(&connect, a)).await?,
        GroupsCommand::Delete(a) => delete(&connect, a).await,
        GroupsCommand::ResetOffsets(a) => tokio::task::spawn_blocking(move || reset_offsets(&connect, a)).await?,
    }
}

/// A consumer that carries `group` as its group id but never subscribes, so it never joins: it only asks the
/// group's coordinator (OffsetFetch, OffsetCommit) and the partition leaders (ListOffsets).
fn group_client(connect: &ConnectArgs, group: &str) -> Result<BaseConsumer<CliContext>, CliError> {
    connect
        .client_config(&[
            ("group.id", group.to_string()),
            ("enable.auto.commit", "false".to_string()),
            ("enable.auto.offset.store", "false".to_string()),
            // The log end offset as Kafka's tool reports it (the high watermark, not the last stable offset).
            ("isolation.level", "read_uncommitted".to_string()),
        ])
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))
}

/// Runs a request to the group coordinator again while the cluster answers that the coordinator is moving or
/// still loading (a fresh Kafka cluster says NOT_COORDINATOR while it creates `__consumer_offsets`), until the
/// request timeout.
fn while_coordinator_moves<T>(
    connect: &ConnectArgs,
    mut request: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = std::time::Instant::now() + connect.timeout();
    loop {
        match request() {
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(RDKafkaErrorCode::NotCoordinator)
                        | Some(RDKafkaErrorCode::CoordinatorLoadInProgress)
                        | Some(RDKafkaErrorCode::CoordinatorNotAvailable)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn explain(consumer: &BaseConsumer<CliContext>, connect: &ConnectArgs, error: &KafkaError) -> String {
    describe_error(error, consumer.context(), &connect.bootstrap_server)
}

/// A consumer group as the coordinator describes it.
#[derive(Debug, Clone, Serialize)]
struct GroupView {
    group: String,
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberView>,
}

#[derive(Debug, Clone, Serialize)]
struct MemberView {
    member_id: String,
    client_id: String,
    host: String,
    /// The partitions the leader assigned this member; `None` when the assignment is not a consumer's (a group
    /// of another protocol type, or one the leader has not sent yet).
    assignment: Option<Vec<TopicPartition>>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
struct TopicPartition {
    topic: String,
    partition: i32,
}

impl GroupView {
    fn from_info(info: &GroupInfo) -> GroupView {
        let is_consumer = info.protocol_type() == "consumer";
        GroupView {
            group: info.name().to_string(),
            state: info.state().to_string(),
            protocol_type: info.protocol_type().to_string(),
            protocol: info.protocol().to_string(),
            members: info
                .members()
                .iter()
                .map(|m| MemberView {
                    member_id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                    assignment: if is_consumer { m.assignment().and_then(decode_assignment) } else { None },
                })
                .collect(),
        }
    }

    /// Kafka's consumer-groups tool shows consumer groups (protocol type `consumer`) and groups that only hold
    /// offsets (no protocol type), not Connect workers and the like.
    fn is_consumer_group(&self) -> bool {
        self.protocol_type.is_empty() || self.protocol_type == "consumer"
    }

    fn is_active(&self) -> bool {
        !self.members.is_empty() || !matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

/// The consumer protocol's assignment (Kafka's `ConsumerProtocolAssignment`, versions 0-3 share the prefix):
/// version i16, then an array of (topic string, array of i32 partitions), then user data, which is ignored.
fn decode_assignment(bytes: &[u8]) -> Option<Vec<TopicPartition>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            Some(head)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let topic = String::from_utf8(r.take(len)?.to_vec()).ok()?;
        let count = r.i32()?;
        for _ in 0..count.max(0) {
            out.push(TopicPartition { topic: topic.clone(), partition: r.i32()? });
        }
    }
    out.sort();
    Some(out)
}

/// Every consumer group the cluster knows (ListGroups on every broker, then DescribeGroups), by name.
fn all_groups(connect: &ConnectArgs) -> Result<BTreeMap<String, GroupView>> {
    let consumer = group_client(connect, "spate-cli-groups")?;
    let list = consumer
        .fetch_group_list(None, connect.timeout())
        .map_err(|e| anyhow::anyhow!("listing groups: {}", explain(&consumer, connect, &e)))?;
    Ok(list
        .groups()
        .iter()
        .map(GroupView::from_info)
        .filter(GroupView::is_consumer_group)
        .map(|g| (g.group.clone(), g))
        .collect())
}

/// One group, or `None` when the cluster does not know it.
fn find_group(connect: &ConnectArgs, consumer: &BaseConsumer<CliContext>, group: &str) -> Result<Option<GroupView>> {
    let list = consumer
        .fetch_group_list(Some(group), connect.timeout())
        .map_err(|e| anyhow::anyhow!("describing group '{group}': {}", explain(consumer, connect, &e)))?;
    Ok(list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(GroupView::from_info)
        // DescribeGroups before v6 answers an unknown group as a group in state Dead.
        .find(|g| !(g.state == "Dead" && g.members.is_empty())))
}

#[derive(Serialize)]
struct ListedGroup {
    group: String,
    state: String,
}

fn list(connect: &ConnectArgs, args: ListArgs) -> Result<()> {
    fetch_metadata(connect)?;
    let groups = all_groups(connect)?;
    let wanted: Option<Vec<&str>> = args.state.as_ref().map(|states| states.iter().map(|s| s.name()).collect());
    let listed: Vec<ListedGroup> = groups
        .values()
        .filter(|g| match &wanted {
            // `--state` with no value lists every group with its state, as Kafka's tool does.
            Some(states) => states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(&g.state)),
            None => true,
        })
        .map(|g| ListedGroup { group: g.group.clone(), state: g.state.clone() })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else if wanted.is_some() {
        let rows: Vec<Vec<String>> = listed.iter().map(|g| vec![g.group.clone(), g.state.clone()]).collect();
        print_table(&["GROUP", "STATE"], &rows);
    } else {
        for g in &listed {
            println!("{}", g.group);
        }
    }
    Ok(())
}

/// A partition's offsets as `describe` shows them.
#[derive(Debug, Clone, Serialize)]
struct OffsetView {
    topic: String,
    partition: i32,
    /// The committed offset; `None` when the group has not committed one for this partition.
    current_offset: Option<i64>,
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    member_id: Option<String>,
    host: Option<String>,
    client_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct DescribedGroup {
    #[serde(flatten)]
    group: GroupView,
    offsets: Vec<OffsetView>,
}

/// The offsets the group has committed, among every partition of `topics` (OffsetFetch names partitions, and
/// librdkafka's call has no "all partitions" form); partitions without a commit are left out.
fn committed(
    connect: &ConnectArgs,
    consumer: &BaseConsumer<CliContext>,
    group: &str,
    partitions: &BTreeSet<TopicPartition>,
) -> Result<BTreeMap<TopicPartition, i64>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    let answered = while_coordinator_moves(connect, || consumer.committed_offsets(tpl.clone(), connect.timeout()))
        .map_err(|e| anyhow::anyhow!("fetching offsets of group '{group}': {}", explain(consumer, connect, &e)))?;
    let mut out = BTreeMap::new();
    for element in answered.elements() {
        if let Err(e) = element.error() {
            bail!("fetching the offset of group '{group}' for {}-{}: {e}", element.topic(), element.partition());
        }
        if let Offset::Offset(offset) = element.offset() {
            out.insert(TopicPartition { topic: element.topic().to_string(), partition: element.partition() }, offset);
        }
    }
    Ok(out)
}

/// ListOffsets for every partition at once: `Offset::Beginning` asks for log start offsets, `Offset::End` for
/// log end offsets, `Offset::Offset(ms)` for the first offset at or after a timestamp (`None` when there is none).
fn list_offsets(
    connect: &ConnectArgs,
    consumer: &BaseConsumer<CliContext>,
    partitions: &BTreeSet<TopicPartition>,
    spec: Offset,
) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut tpl = TopicPartitionList::new();
    for tp in partitions {
        tpl.add_partition_offset(&tp.topic, tp.partition, spec)?;
    }
    // offsets_for_times sends the offset field as ListOffsets' timestamp: -2 earliest, -1 latest, else a time.
    let answered = consumer
        .offsets_for_times(tpl, connect.timeout())
        .map_err(|e| anyhow::anyhow!("listing offsets: {}", explain(consumer, connect, &e)))?;
    let mut out = BTreeMap::new();
    for element in answered.elements() {
        if let Err(e) = element.error() {
            bail!("listing offsets of {}-{}: {e}", element.topic(), element.partition());
        }
        let offset = match element.offset() {
            Offset::Offset(offset) if offset >= 0 => Some(offset),
            _ => None,
        };
        out.insert(TopicPartition { topic: element.topic().to_string(), partition: element.partition() }, offset);
    }
    Ok(out)
}

/// Every partition of every topic that is not internal.
fn all_partitions(metadata: &Metadata) -> BTreeSet<TopicPartition> {
    metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
        .flat_map(|t| {
            t.partitions().iter().map(move |p| TopicPartition { topic: t.name().to_string(), partition: p.id() })
        })
        .collect()
}

fn describe_one(connect: &ConnectArgs, metadata: &Metadata, group: GroupView) -> Result<DescribedGroup> {
    let consumer = group_client(connect, &group.group)?;
    let existing = all_partitions(metadata);
    let committed = committed(connect, &consumer, &group.group, &existing)?;
    let mut owner: BTreeMap<TopicPartition, &MemberView> = BTreeMap::new();
    for member in &group.members {
        for tp in member.assignment.iter().flatten() {
            owner.insert(tp.clone(), member);
        }
    }
    let shown: BTreeSet<TopicPartition> = committed.keys().chain(owner.keys()).cloned().collect();
    let log_end = list_offsets(
        connect,
        &consumer,
        &shown.iter().filter(|tp| existing.contains(tp)).cloned().collect(),
        Offset::End,
    )?;
    let offsets = shown
        .into_iter()
        .map(|tp| {
            let current = committed.get(&tp).copied();
            let end = log_end.get(&tp).copied().flatten();
            let member = owner.get(&tp);
            OffsetView {
                lag: match (current, end) {
                    (Some(c), Some(e)) => Some((e - c).max(0)),
                    _ => None,
                },
                current_offset: current,
                log_end_offset: end,
                member_id: member.map(|m| m.member_id.clone()),
                host: member.map(|m| m.host.clone()),
                client_id: member.map(|m| m.client_id.clone()),
                topic: tp.topic,
                partition: tp.partition,
            }
        })
        .collect();
    Ok(DescribedGroup { group, offsets })
}

fn describe(connect: &ConnectArgs, args: DescribeArgs) -> Result<()> {
    let metadata = fetch_metadata(connect)?;
    let groups: Vec<GroupView> = if args.all_groups {
        all_groups(connect)?.into_values().collect()
    } else {
        let consumer = group_client(connect, "spate-cli-groups")?;
        let mut found = Vec::new();
        for name in &args.groups {
            match find_group(connect, &consumer, name)? {
                Some(group) => found.push(group),
                None => bail!("consumer group '{name}' does not exist"),
            }
        }
        found
    };
    let described = groups.into_iter().map(|g| describe_one(connect, &metadata, g)).collect::<Result<Vec<_>>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&described)?);
        return Ok(());
    }
    let dash = || "-".to_string();
    let num = |n: Option<i64>| n.map_or_else(dash, |n| n.to_string());
    for (i, d) in described.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let g = &d.group;
        let protocol = if g.protocol.is_empty() { dash() } else { g.protocol.clone() };
        print_table(
            &["GROUP", "STATE", "PROTOCOL-TYPE", "PROTOCOL", "MEMBERS"],
            &[vec![
                g.group.clone(),
                g.state.clone(),
                if g.protocol_type.is_empty() { dash() } else { g.protocol_type.clone() },
                protocol,
                g.members.len().to_string(),
            ]],
        );
        println!();
        if g.members.is_empty() {
            println!("Consumer group '{}' has no active members.", g.group);
        } else {
            let rows: Vec<Vec<String>> = g
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.member_id.clone(),
                        m.host.clone(),
                        m.client_id.clone(),
                        m.assignment.as_ref().map_or_else(dash, |a| a.len().to_string()),
                        m.assignment.as_ref().map_or_else(dash, |a| format_assignment(a)),
                    ]
                })
                .collect();
            print_table(&["CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS", "ASSIGNMENT"], &rows);
        }
        println!();
        if d.offsets.is_empty() {
            println!("Consumer group '{}' has no committed offsets and no assigned partitions.", g.group);
            continue;
        }
        let rows: Vec<Vec<String>> = d
            .offsets
            .iter()
            .map(|o| {
                vec![
                    g.group.clone(),
                    o.topic.clone(),
                    o.partition.to_string(),
                    num(o.current_offset),
                    num(o.log_end_offset),
                    num(o.lag),
                    o.member_id.clone().unwrap_or_else(dash),
                    o.host.clone().unwrap_or_else(dash),
                    o.client_id.clone().unwrap_or_else(dash),
                ]
            })
            .collect();
        print_table(
            &[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ],
            &rows,
        );
    }
    Ok(())
}

/// `orders(0,1),payments(2)`.
fn format_assignment(assignment: &[TopicPartition]) -> String {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in assignment {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    if by_topic.is_empty() {
        return "-".to_string();
    }
    by_topic
        .iter()
        .map(|(topic, ps)| format!("{topic}({})", ps.iter().map(i32::to_string).collect::<Vec<_>>().join(",")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Columns padded to their widest cell, two spaces apart, as Kafka's tools print them.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

async fn delete(connect: &ConnectArgs, args: DeleteArgs) -> Result<()> {
    fetch_metadata(connect)?;
    let admin: AdminClient<CliContext> = connect
        .client_config(&[])
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;
    let options = AdminOptions::new().request_timeout(Some(connect.timeout()));
    let names: Vec<&str> = args.groups.iter().map(String::as_str).collect();
    let results = admin.delete_groups(&names, &options).await.map_err(|e| {
        anyhow::anyhow!("deleting groups: {}", describe_error(&e, admin.inner().context(), &connect.bootstrap_server))
    })?;
    let mut failed = 0;
    for result in results {
        match result {
            Ok(name) => println!("Deleted consumer group {name}."),
            Err((name, RDKafkaErrorCode::GroupIdNotFound)) if args.if_exists => {
                println!("Consumer group {name} does not exist.")
            }
            Err((name, RDKafkaErrorCode::GroupIdNotFound)) => {
                eprintln!("error: consumer group '{name}' does not exist");
                failed += 1;
            }
            Err((name, RDKafkaErrorCode::NonEmptyGroup)) => {
                eprintln!("error: consumer group '{name}' has active members; stop them before deleting it");
                failed += 1;
            }
            Err((name, code)) => {
                eprintln!("error: deleting consumer group '{name}': {code}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(crate::Reported(format!("{failed} of {} groups not deleted", names.len())).into());
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct ResetReport {
    group: String,
    executed: bool,
    partitions: Vec<ResetView>,
}

#[derive(Debug, Serialize)]
struct ResetView {
    topic: String,
    partition: i32,
    current_offset: Option<i64>,
    new_offset: i64,
}

fn reset_offsets(connect: &ConnectArgs, args: ResetArgs) -> Result<()> {
    let metadata = fetch_metadata(connect)?;
    let consumer = group_client(connect, &args.group)?;
    let group = find_group(connect, &consumer, &args.group)?;
    // Kafka's tool refuses even a dry run on an active group; a dry run here only reads, so it is allowed, and
    // --execute is refused (the coordinator would refuse the commit of a non-member anyway).
    if let Some(group) = group.as_ref().filter(|g| g.is_active()) {
        let message = format!(
            "consumer group '{}' has {} active member(s) (state {}); offsets can only be reset while it has none",
            group.group,
            group.members.len(),
            group.state
        );
        if args.execute {
            bail!("{message}");
        }
        eprintln!("warning: {message}");
    }

    let existing = all_partitions(&metadata);
    let current_all = committed(connect, &consumer, &args.group, &existing)?;
    let scope: BTreeSet<TopicPartition> = if args.all_topics {
        current_all.keys().cloned().collect()
    } else {
        let mut scope = BTreeSet::new();
        for t in &args.topic {
            let Some(topic) = metadata.topics().iter().find(|m| m.name() == t.topic && m.error().is_none()) else {
                return Err(CliError::UnknownTopic(t.topic.clone()).into());
            };
            let count = topic.partitions().len();
            if t.partitions.is_empty() {
                scope.extend((0..count as i32).map(|p| TopicPartition { topic: t.topic.clone(), partition: p }));
            }
            for &p in &t.partitions {
                if p as usize >= count {
                    return Err(CliError::UnknownPartition { topic: t.topic.clone(), partition: p, count }.into());
                }
                scope.insert(TopicPartition { topic: t.topic.clone(), partition: p });
            }
        }
        scope
    };
    if scope.is_empty() {
        bail!("consumer group '{}' has no committed offsets, so --all-topics selects nothing", args.group);
    }

    let earliest = list_offsets(connect, &consumer, &scope, Offset::Beginning)?;
    let latest = list_offsets(connect, &consumer, &scope, Offset::End)?;
    let by_time = match args.to_datetime {
        Some(ms) => Some(list_offsets(connect, &consumer, &scope, Offset::Offset(ms))?),
        None => None,
    };
    let mut planned = Vec::with_capacity(scope.len());
    for tp in &scope {
        let (Some(low), Some(high)) = (earliest.get(tp).copied().flatten(), latest.get(tp).copied().flatten()) else {
            bail!("the broker returned no log start or log end offset for {}-{}", tp.topic, tp.partition);
        };
        let current = current_all.get(tp).copied();
        let wanted = if args.to_earliest {
            low
        } else if args.to_latest {
            high
        } else if let Some(by_time) = &by_time {
            // No record at or after that time: the log end, as Kafka's tool does.
            by_time.get(tp).copied().flatten().unwrap_or(high)
        } else if let Some(offset) = args.to_offset {
            offset
        } else if let Some(shift) = args.shift_by {
            let Some(current) = current else {
                bail!(
                    "cannot shift the offset of {}-{}: group '{}' has no committed offset for it",
                    tp.topic,
                    tp.partition,
                    args.group
                );
            };
            current.saturating_add(shift)
        } else {
            unreachable!("clap requires one reset target")
        };
        let new_offset = wanted.clamp(low, high);
        if new_offset != wanted {
            eprintln!(
                "note: {}-{}: offset {wanted} is outside {low}..={high} (log start..log end); using {new_offset}",
                tp.topic, tp.partition
            );
        }
        planned.push(ResetView {
            topic: tp.topic.clone(),
            partition: tp.partition,
            current_offset: current,
            new_offset,
        });
    }

    if args.execute {
        let mut tpl = TopicPartitionList::new();
        for p in &planned {
            tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.new_offset))?;
        }
        while_coordinator_moves(connect, || consumer.commit(&tpl, CommitMode::Sync)).map_err(|e| {
            match e.rdkafka_error_code() {
                Some(RDKafkaErrorCode::UnknownMemberId) | Some(RDKafkaErrorCode::IllegalGeneration) => anyhow::anyhow!(
                    "consumer group '{}' gained members; offsets can only be reset while it has none",
                    args.group
                ),
                _ => anyhow::anyhow!(
                    "committing the new offsets of group '{}': {}",
                    args.group,
                    explain(&consumer, connect, &e)
                ),
            }
        })?;
    }

    let report = ResetReport { group: args.group.clone(), executed: args.execute, partitions: planned };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let rows: Vec<Vec<String>> = report
            .partitions
            .iter()
            .map(|p| {
                vec![
                    report.group.clone(),
                    p.topic.clone(),
                    p.partition.to_string(),
                    p.current_offset.map_or_else(|| "-".to_string(), |o| o.to_string()),
                    p.new_offset.to_string(),
                ]
            })
            .collect();
        print_table(&["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"], &rows);
    }
    if args.execute {
        eprintln!("Committed new offsets for {} partition(s) of group {}.", report.partitions.len(), report.group);
    } else {
        eprintln!("Dry run: nothing was changed. Add --execute to commit these offsets.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_as_kafka_writes_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00"), Ok(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:00.5Z"), Ok(500));
        assert_eq!(parse_datetime("2024-02-29T12:34:56.789Z"), Ok(1_709_210_096_789));
        assert_eq!(parse_datetime("2024-02-29T13:34:56.789+01:00"), Ok(1_709_210_096_789));
        assert_eq!(parse_datetime("2024-02-29T11:34:56.789-0100"), Ok(1_709_210_096_789));
        assert_eq!(parse_datetime("1709210096789"), Ok(1_709_210_096_789));
        for bad in ["2023-02-29T00:00:00", "2024-1-01T00:00:00", "2024-01-01", "2024-01-01T25:00:00", "x", "-5"] {
            assert!(parse_datetime(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn topic_scopes_name_partitions_or_all() {
        let all = parse_topic_scope("orders").unwrap();
        assert_eq!((all.topic.as_str(), all.partitions.len()), ("orders", 0));
        let some = parse_topic_scope("orders:0,2").unwrap();
        assert_eq!(some.partitions, vec![0, 2]);
        assert!(parse_topic_scope("orders:a").is_err());
        assert!(parse_topic_scope(":1").is_err());
    }

    #[test]
    fn consumer_assignments_decode() {
        // version 1, one topic "t" with partitions 3 and 1, empty user data.
        let bytes = [0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff];
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(
            decoded,
            vec![
                TopicPartition { topic: "t".into(), partition: 1 },
                TopicPartition { topic: "t".into(), partition: 3 }
            ]
        );
        assert_eq!(format_assignment(&decoded), "t(1,3)");
        assert!(decode_assignment(&[0, 1, 0, 0, 0, 1, 0, 5]).is_none());
    }
}
