//! `spate perf rebalance`: how long a consumer group takes to rebalance, measured with real librdkafka members so
//! the figure compares between Spate's broker and Apache Kafka with the same client on both sides.
//!
//! Each run uses a fresh group on one topic. `members - 1` members join and settle first (not measured: the first
//! rebalance of an empty group also waits `group.initial.rebalance.delay.ms` on the broker). Then:
//!
//! - join: from just before the last member's `subscribe` until every member has received its assignment of the
//!   new generation (each member's rebalance callback stamps the time; the figure is the latest stamp, once the
//!   members' assignments together cover every partition, each member some, none twice);
//! - leave: from just before that last member is closed (librdkafka revokes, then sends LeaveGroup) until every
//!   remaining member has its new assignment, by the same rule.
//!
//! Existing members learn of a rebalance from their next heartbeat, so both figures include up to one
//! `heartbeat.interval.ms` of the members; it is a flag, the same on both brokers. Each event starts after a
//! pseudo-random wait within one heartbeat interval (the same sequence on every run of the command), so it falls
//! at varying points of the members' heartbeat cycle rather than always just after their previous rebalance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use serde::Serialize;

use crate::client::{describe_error, fetch_metadata, CliContext, CliError, ConnectArgs};

#[derive(Args, Debug)]
pub struct PerfRebalanceArgs {
    /// Number of members in the group (the last one joins and leaves in each run).
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(2..=1000))]
    members: u32,
    /// Partitions of the topic the group consumes (at least --members, so every member gets some).
    #[arg(long, default_value_t = 64, value_name = "N")]
    partitions: i32,
    /// Number of runs, each with a fresh group; figures are reported as min, median and max.
    #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Topic to use; it must have --partitions partitions (default: a new topic, deleted at the end).
    #[arg(long, short = 't')]
    topic: Option<String>,
    /// The members' heartbeat.interval.ms (librdkafka's default is 3000).
    #[arg(long, default_value_t = 3_000, value_name = "MS")]
    heartbeat_interval_ms: u64,
    /// The members' session.timeout.ms.
    #[arg(long, default_value_t = 45_000, value_name = "MS")]
    session_timeout_ms: u64,
    /// The members' partition.assignment.strategy, eager assignors only (librdkafka's default offers range, then
    /// roundrobin).
    #[arg(long, default_value = "range,roundrobin", value_name = "ASSIGNORS")]
    assignment_strategy: String,
    /// Give up on a rebalance that has not completed after this long, in milliseconds.
    #[arg(long, default_value_t = 120_000, value_name = "MS")]
    timeout_ms: u64,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// What a member's rebalance callbacks last saw: when, and the partitions it then owned.
#[derive(Default)]
struct Seen {
    at: Option<Instant>,
    owned: Vec<i32>,
    errors: Vec<String>,
}

struct MemberContext {
    client: CliContext,
    seen: Arc<Mutex<Seen>>,
}

impl ClientContext for MemberContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        self.client.log(level, fac, message)
    }
    fn error(&self, error: KafkaError, reason: &str) {
        self.client.error(error, reason)
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let now = Instant::now();
        let Ok(mut seen) = self.seen.lock() else { return };
        if let Rebalance::Error(e) = rebalance {
            seen.errors.push(e.to_string());
            return;
        }
        // The whole assignment after this event: eager protocols replace it, cooperative ones change it.
        seen.owned =
            consumer.assignment().map(|a| a.elements().iter().map(|e| e.partition()).collect()).unwrap_or_default();
        seen.at = Some(now);
    }
}

/// A group member polling on its own thread until told to leave.
struct Member {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Member {
    fn join(args: &PerfRebalanceArgs, group: &str, topic: &str) -> Result<Member> {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let consumer: BaseConsumer<MemberContext> = args
            .connect
            .client_config(&[
                ("group.id", group.to_string()),
                ("enable.auto.commit", "false".to_string()),
                ("heartbeat.interval.ms", args.heartbeat_interval_ms.to_string()),
                ("session.timeout.ms", args.session_timeout_ms.to_string()),
                ("partition.assignment.strategy", args.assignment_strategy.clone()),
            ])
            .create_with_context(MemberContext { client: CliContext::default(), seen: seen.clone() })
            .map_err(|e| CliError::ClientConfig(e.to_string()))?;
        consumer.subscribe(&[topic])?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                // Serves the rebalance callbacks; the topic is empty, so no records arrive.
                let _ = consumer.poll(Duration::from_millis(20));
            }
            // Dropping closes the consumer: revoke, then LeaveGroup.
            drop(consumer);
        });
        Ok(Member { seen, stop, handle: Some(handle) })
    }

    fn snapshot(&self) -> (Option<Instant>, Vec<i32>, Vec<String>) {
        match self.seen.lock() {
            Ok(s) => (s.at, s.owned.clone(), s.errors.clone()),
            Err(_) => (None, Vec::new(), Vec::new()),
        }
    }

    /// Asks the member to leave without waiting for it.
    fn signal_leave(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Waits until the members own every partition between them, each some and none twice; returns the latest
/// callback time among them, which is when the last of them got its assignment.
fn wait_assigned(members: &[&Member], partitions: i32, since: Instant, timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let snapshots: Vec<_> = members.iter().map(|m| m.snapshot()).collect();
        if let Some(errors) = snapshots.iter().map(|s| &s.2).find(|e| !e.is_empty()) {
            bail!("a member's rebalance failed: {}", errors.join("; "));
        }
        let mut all: Vec<i32> = snapshots.iter().flat_map(|s| s.1.iter().copied()).collect();
        all.sort_unstable();
        let complete = all.len() == partitions as usize && all.iter().copied().eq(0..partitions);
        let everyone = snapshots.iter().all(|s| !s.1.is_empty() && s.0.is_some_and(|at| at >= since));
        if complete && everyone {
            return Ok(snapshots.iter().filter_map(|s| s.0).max().unwrap_or(since));
        }
        if Instant::now() >= deadline {
            let owned: Vec<usize> = snapshots.iter().map(|s| s.1.len()).collect();
            bail!("the group did not settle within {} ms (partitions per member: {owned:?})", timeout.as_millis());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits uniform over one heartbeat interval, from a fixed seed (xorshift64).
struct Phases(u64);

impl Phases {
    fn next(&mut self, interval_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_micros(self.0 % (interval_ms.max(1) * 1_000))
    }
}

#[derive(Serialize, Debug)]
struct Figures {
    min: f64,
    median: f64,
    max: f64,
    runs: Vec<f64>,
}

impl Figures {
    fn of(mut runs: Vec<f64>) -> Figures {
        let shown = runs.clone();
        runs.sort_by(f64::total_cmp);
        let median = if runs.is_empty() {
            0.0
        } else if runs.len() % 2 == 1 {
            runs[runs.len() / 2]
        } else {
            (runs[runs.len() / 2 - 1] + runs[runs.len() / 2]) / 2.0
        };
        Figures {
            min: runs.first().copied().unwrap_or(0.0),
            median,
            max: runs.last().copied().unwrap_or(0.0),
            runs: shown,
        }
    }
}

#[derive(Serialize, Debug)]
struct RebalanceReport {
    topic: String,
    members: u32,
    partitions: i32,
    heartbeat_interval_ms: u64,
    session_timeout_ms: u64,
    assignment_strategy: String,
    /// From the last member's subscribe until all members have their assignment, in milliseconds.
    join_ms: Figures,
    /// From a member's close (LeaveGroup) until the remaining members have their assignment, in milliseconds.
    leave_ms: Figures,
}

pub fn run(args: PerfRebalanceArgs) -> Result<()> {
    if args.assignment_strategy.contains("cooperative") {
        bail!("only eager assignors (range, roundrobin) are measured: a cooperative rebalance does not call back every member");
    }
    if args.partitions < args.members as i32 {
        bail!(
            "--partitions ({}) must be at least --members ({}) so every member gets some",
            args.partitions,
            args.members
        );
    }
    let connect = &args.connect;
    let metadata = fetch_metadata(connect)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let (topic, created) = match &args.topic {
        Some(topic) => {
            let Some(t) = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()) else {
                return Err(CliError::UnknownTopic(topic.clone()).into());
            };
            if t.partitions().len() != args.partitions as usize {
                bail!("topic '{topic}' has {} partitions, not --partitions {}", t.partitions().len(), args.partitions);
            }
            (topic.clone(), false)
        }
        None => (format!("spate-perf-rebalance-{stamp}"), true),
    };
    // Called on a blocking thread of the command's runtime.
    let runtime = tokio::runtime::Handle::current();
    let admin: AdminClient<CliContext> = connect
        .client_config(&[])
        .create_with_context(CliContext::default())
        .map_err(|e| CliError::ClientConfig(e.to_string()))?;
    let options = AdminOptions::new().request_timeout(Some(connect.timeout()));
    if created {
        let new_topic = NewTopic::new(&topic, args.partitions, TopicReplication::Fixed(-1));
        let results = runtime.block_on(admin.create_topics([&new_topic], &options)).map_err(|e| {
            anyhow::anyhow!(
                "creating topic '{topic}': {}",
                describe_error(&e, admin.inner().context(), &connect.bootstrap_server)
            )
        })?;
        for result in results {
            if let Err((name, code)) = result {
                bail!("creating topic '{name}': {code}");
            }
        }
        // Members subscribe by name; wait until the topic is in metadata with all its partitions.
        let deadline = Instant::now() + connect.timeout();
        loop {
            let m = fetch_metadata(connect)?;
            if crate::client::partition_count(&m, &topic) == Some(args.partitions as usize) {
                break;
            }
            if Instant::now() >= deadline {
                bail!("topic '{topic}' did not appear in metadata");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    let outcome = measure(&args, &topic, stamp);
    if created {
        let deleted = runtime.block_on(admin.delete_topics(&[topic.as_str()], &options));
        if let Err(e) = deleted {
            eprintln!("warning: deleting topic '{topic}': {e}");
        }
    }
    let (join, leave) = outcome?;
    let report = RebalanceReport {
        topic,
        members: args.members,
        partitions: args.partitions,
        heartbeat_interval_ms: args.heartbeat_interval_ms,
        session_timeout_ms: args.session_timeout_ms,
        assignment_strategy: args.assignment_strategy.clone(),
        join_ms: Figures::of(join),
        leave_ms: Figures::of(leave),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        let line = |f: &Figures| {
            let runs: Vec<String> = f.runs.iter().map(|r| format!("{r:.1}")).collect();
            format!("median {:.1} ms, min {:.1} ms, max {:.1} ms (runs: {})", f.median, f.min, f.max, runs.join(", "))
        };
        println!(
            "Rebalance of a group of {} members on {} partitions, {} run(s), heartbeat.interval.ms={}, \
             partition.assignment.strategy={}:",
            report.members, report.partitions, args.runs, report.heartbeat_interval_ms, report.assignment_strategy
        );
        println!(
            "  join  (member {} subscribes -> all {} assigned):  {}",
            report.members,
            report.members,
            line(&report.join_ms)
        );
        println!("  leave (1 member leaves -> remaining {} assigned): {}", report.members - 1, line(&report.leave_ms));
    }
    Ok(())
}

fn measure(args: &PerfRebalanceArgs, topic: &str, stamp: u128) -> Result<(Vec<f64>, Vec<f64>)> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let (mut join, mut leave) = (Vec::new(), Vec::new());
    let mut phases = Phases(0x9E37_79B9_7F4A_7C15);
    for run in 0..args.runs {
        let group = format!("spate-perf-rebalance-{stamp}-{run}");
        let first: Vec<Member> = (1..args.members).map(|_| Member::join(args, &group, topic)).collect::<Result<_>>()?;
        let refs: Vec<&Member> = first.iter().collect();
        let setup_start = Instant::now();
        wait_assigned(&refs, args.partitions, setup_start, timeout)?;

        // The members' heartbeat timers restart when a rebalance completes; starting the event at once would put
        // it at the same point of their heartbeat cycle every time. A pseudo-random wait (the same sequence on
        // every broker) spreads it over the cycle, as in real life.
        std::thread::sleep(phases.next(args.heartbeat_interval_ms));
        let start = Instant::now();
        let last = Member::join(args, &group, topic)?;
        let mut all = refs.clone();
        all.push(&last);
        let done = wait_assigned(&all, args.partitions, start, timeout)?;
        join.push(done.duration_since(start).as_secs_f64() * 1_000.0);

        std::thread::sleep(phases.next(args.heartbeat_interval_ms));
        let start = Instant::now();
        last.signal_leave();
        let done = wait_assigned(&refs, args.partitions, start, timeout)?;
        leave.push(done.duration_since(start).as_secs_f64() * 1_000.0);
        drop(last);
        let ms = |v: &Vec<f64>| v.last().copied().unwrap_or(0.0);
        eprintln!("run {}/{}: join {:.1} ms, leave {:.1} ms", run + 1, args.runs, ms(&join), ms(&leave));
        // Every member leaves before the next run's group forms.
        drop(refs);
        drop(first);
    }
    Ok((join, leave))
}
