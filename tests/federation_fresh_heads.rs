//! Fresh heads through a mirror (`tag-log.md` §9.4): a member on b.example of a topic hosted on
//! a.example reads b's mirror; when b's held head is older than `HEAD_RESIGN_AFTER`, b asks a
//! for its current head (which a re-signs), and when a cannot be reached b serves what it holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use rendezvous_client::{Client, ReadReport};
use rendezvous_protocol::ids::{TopicId, UserId};
use rendezvous_protocol::tlog::HEAD_RESIGN_AFTER;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::federation::Federation;

fn id(user: &str, server: &str) -> UserId {
    format!("@{user}:{server}").parse().unwrap()
}

/// Reads until the read covers `size` entries, or panics after 30 s.
async fn read_to(client: &mut Client, topic: &TopicId, size: u64) -> ReadReport {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(report) = client.read(topic).await
            && report.size >= size
        {
            return report;
        }
        assert!(Instant::now() < deadline, "the mirror never reached {size}");
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_mirror_refreshes_an_old_head_from_the_host_and_keeps_serving_when_it_is_down() {
    let mut fed = Federation::in_process("fresh-heads", &["a.example", "b.example"]).start();
    let mut alice = fed.register("a.example", "alice").await;
    let mut bob = fed.register("b.example", "bob").await;
    let topic = alice
        .create_topic(&[(id("bob", "b.example"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"hello").await.unwrap();
    let first = read_to(&mut bob, &topic, 2).await;
    assert!(first.age <= 3, "{first:?}");

    // The federation's clock (both servers', both clients') moves instead of the test waiting.
    fed.clock.advance(HEAD_RESIGN_AFTER + 2);
    let fresh = bob.read(&topic).await.unwrap();
    assert_eq!(fresh.size, 2);
    assert!(
        fresh.age <= 3,
        "b did not refresh its head from a: {fresh:?}"
    );
    // Bob may write on it: the view is complete and fresh.
    bob.send(&topic, b"hi from b").await.unwrap();
    let seen = read_to(&mut bob, &topic, 3).await;

    fed.stop("a.example");
    fed.clock.advance(HEAD_RESIGN_AFTER + 2);
    let held = bob.read(&topic).await.unwrap();
    assert_eq!(held.size, seen.size);
    assert!(
        held.age > HEAD_RESIGN_AFTER && !held.stale,
        "b serves the head it holds while a is down: {held:?}"
    );
}
