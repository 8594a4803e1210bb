//! Waiting, bounded, for what federation and witnessing make true a moment later.

use std::time::{Duration, Instant};

use rendezvous_client::{Client, ReadReport};
use rendezvous_protocol::ids::TopicId;

/// Reads `topic` as `client` until `done` holds for a report, or panics after 30 s saying
/// what never happened (`what`) and the last answer.
pub async fn read_until(
    client: &mut Client,
    topic: &TopicId,
    what: &str,
    done: impl Fn(&ReadReport) -> bool,
) -> ReadReport {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last = client.read(topic).await;
        if let Ok(report) = &last
            && done(report)
        {
            return report.clone();
        }
        assert!(Instant::now() < deadline, "never {what}: {last:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
