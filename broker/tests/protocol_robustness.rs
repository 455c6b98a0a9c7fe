//! Bad bytes on the wire: the broker drops the offender, never allocates from a hostile length, and keeps
//! serving everyone else.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{consume, frame, produce, raw_exchange, value_str, TestBroker};

#[global_allocator]
static ALLOC: spate_broker::protocol::decode_guard::GuardedAllocator =
    spate_broker::protocol::decode_guard::GuardedAllocator;

fn parse_header(reply: &[u8]) -> (i32, i32, i16) {
    assert!(reply.len() >= 10, "reply too short: {reply:?}");
    let size = i32::from_be_bytes(reply[0..4].try_into().unwrap());
    let corr = i32::from_be_bytes(reply[4..8].try_into().unwrap());
    let err = i16::from_be_bytes(reply[8..10].try_into().unwrap());
    (size, corr, err)
}

#[tokio::test(flavor = "multi_thread")]
async fn api_versions_v0_on_a_raw_socket_is_answered() {
    let b = TestBroker::start().await;
    let bootstrap = b.bootstrap.clone();
    let reply = tokio::task::spawn_blocking(move || raw_exchange(&bootstrap, &frame(18, 0, 77, &[]))).await.unwrap();
    let (size, corr, err) = parse_header(&reply);
    assert_eq!(size as usize, reply.len() - 4);
    assert_eq!((corr, err), (77, 0));
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn api_versions_from_the_future_gets_unsupported_version_and_our_ranges() {
    let b = TestBroker::start().await;
    let bootstrap = b.bootstrap.clone();
    let reply = tokio::task::spawn_blocking(move || raw_exchange(&bootstrap, &frame(18, 127, 5, &[]))).await.unwrap();
    let (_, corr, err) = parse_header(&reply);
    assert_eq!((corr, err), (5, 35));
    let count = i32::from_be_bytes(reply[10..14].try_into().unwrap());
    assert!(count >= 10, "KIP-511: the answer lists our APIs, got {count}");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_frames_close_only_their_connection() {
    let b = TestBroker::start().await;
    let topic = "survivor";
    b.create_topic(topic, 1, &[]).await;
    let mut huge_len = 0x7FFF_FFF0i32.to_be_bytes().to_vec();
    huge_len.extend_from_slice(&[0u8; 16]);
    let hostile: Vec<Vec<u8>> = vec![
        b"\x00\x00\x00\x05hello".to_vec(),
        huge_len,
        (-5i32).to_be_bytes().to_vec(),
        frame(9999, 0, 1, &[]),
        frame(0, 99, 2, &[0xff; 40]),
        frame(0, 9, 3, &[1, 2, 3]),
        frame(3, 12, 4, &[0xff; 32]),
        // Metadata v4 claiming 2^31-1 topics in a 4-byte body: must not allocate for them.
        frame(3, 4, 6, &0x7FFF_FFFFi32.to_be_bytes()),
        // CreateTopics v2 claiming 2^31-1 topics.
        frame(19, 2, 7, &0x7FFF_FFFFi32.to_be_bytes()),
        // Produce v2: advertised, refused at request time.
        frame(0, 2, 8, &[0; 16]),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
    ];
    for payload in hostile {
        let bootstrap = b.bootstrap.clone();
        let reply = tokio::task::spawn_blocking(move || raw_exchange(&bootstrap, &payload)).await.unwrap();
        assert!(reply.is_empty(), "hostile frame got an answer: {reply:?}");
    }
    let p = b.producer(&[]);
    produce(&p, topic, &[(None, "still-alive".to_string())]).await;
    let c = b.consumer(&[]);
    let got = consume(&c, topic, &[0], 1, Duration::from_secs(20));
    assert_eq!(got.iter().map(value_str).collect::<Vec<_>>(), vec!["still-alive"]);
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_requests_are_answered_in_order() {
    let b = TestBroker::start().await;
    let mut bytes = Vec::new();
    for corr in 0..50 {
        bytes.extend_from_slice(&frame(18, if corr % 2 == 0 { 0 } else { 2 }, corr, &[]));
    }
    let bootstrap = b.bootstrap.clone();
    let replies = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&bootstrap).unwrap();
        s.write_all(&bytes).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut correlations = Vec::new();
        for _ in 0..50 {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
            s.read_exact(&mut body).unwrap();
            correlations.push(i32::from_be_bytes(body[0..4].try_into().unwrap()));
        }
        correlations
    })
    .await
    .unwrap();
    assert_eq!(replies, (0..50).collect::<Vec<_>>());
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed() {
    let b = TestBroker::start_with(|c| c.connections_max_idle_ms = 300).await;
    let bootstrap = b.bootstrap.clone();
    let closed = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(&bootstrap).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 1];
        matches!(s.read(&mut buf), Ok(0))
    })
    .await
    .unwrap();
    assert!(closed, "idle connection was not closed by the broker");
    b.shutdown().await;
}
