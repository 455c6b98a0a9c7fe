//! Static membership (KIP-345): a member restarted with the same `group.instance.id` within its session timeout
//! gets its partitions back without a rebalance, and a second instance with the same id fences the first.

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

mod common;
mod groups_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{uuid_like, TestBroker};
use groups_support::{wait_split, Member};

fn generation(b: &TestBroker, group: &str) -> (i32, String, usize) {
    let d = b.broker.as_ref().and_then(|br| br.state().coordinators.groups.describe_group(group)).expect("group");
    (d.generation_id, d.state.as_str().to_string(), d.members.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_static_member_gets_its_partitions_back_without_a_rebalance() {
    let b = TestBroker::start().await;
    let topic = format!("static-{}", uuid_like());
    b.create_topic(&topic, 4, &[]).await;
    let group = format!("g-{}", uuid_like());
    let sink = Arc::new(Mutex::new(Vec::new()));
    let opts = |id: &'static str| [("group.instance.id", id), ("session.timeout.ms", "20000")];
    let a = Member::spawn(&b.bootstrap, &group, &topic, &opts("a"), sink.clone());
    let other = Member::spawn(&b.bootstrap, &group, &topic, &opts("b"), sink.clone());
    let split = wait_split(&[&a, &other], 4, Duration::from_secs(60));
    let (gen_before, state, members) = generation(&b, &group);
    assert_eq!((state.as_str(), members), ("Stable", 2));
    // A static member does not send LeaveGroup when it closes: the group keeps its place.
    a.leave();
    let a = Member::spawn(&b.bootstrap, &group, &topic, &opts("a"), sink.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.owned() != split[0] {
        assert!(Instant::now() < deadline, "restarted member owns {:?}, had {:?}", a.owned(), split[0]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (gen_after, state, members) = generation(&b, &group);
    assert_eq!((gen_after, state.as_str(), members), (gen_before, "Stable", 2), "the group rebalanced");
    assert_eq!(other.owned(), split[1]);
    a.leave();
    other.leave();
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_instance_with_the_same_instance_id_fences_the_first() {
    let b = TestBroker::start().await;
    let topic = format!("fence-{}", uuid_like());
    b.create_topic(&topic, 2, &[]).await;
    let group = format!("g-{}", uuid_like());
    let sink = Arc::new(Mutex::new(Vec::new()));
    let opts = [("group.instance.id", "same"), ("session.timeout.ms", "20000")];
    let first = Member::spawn(&b.bootstrap, &group, &topic, &opts, sink.clone());
    wait_split(&[&first], 2, Duration::from_secs(30));
    let member_of = |b: &TestBroker| {
        b.broker
            .as_ref()
            .and_then(|br| br.state().coordinators.groups.describe_group(&group))
            .map(|d| d.members.iter().map(|m| m.member_id.clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let first_id = member_of(&b);
    assert_eq!(first_id.len(), 1);
    let second = Member::spawn(&b.bootstrap, &group, &topic, &opts, sink.clone());
    wait_split(&[&second], 2, Duration::from_secs(30));
    let now = member_of(&b);
    assert_eq!(now.len(), 1, "one member per instance id: {now:?}");
    assert_ne!(now, first_id, "the second instance replaced the first");
    assert!(now[0].starts_with("same-"), "static member ids start with the instance id: {now:?}");
    drop(first);
    second.leave();
    b.shutdown().await;
}
