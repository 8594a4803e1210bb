//! Group commit on the posting hot path: 64 concurrent tasks, each appending one message-sized
//! entry (with its tag and a tag-log node) to a topic and waiting for `sync`, on a real
//! database under `target/`.
//!
//! `cargo bench --bench store -- --warm-up-time 1 --measurement-time 5`
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rendezvous::store::{Append, Store};
use rendezvous_protocol::ids::TopicId;

const TASKS: usize = 64;

struct Bench {
    store: Store,
    topics: Vec<TopicId>,
    next: Vec<AtomicU64>,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    fn new() -> Bench {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("store-bench");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let topics = (0..TASKS)
            .map(|i| {
                let c = (b'a' + (i % 26) as u8) as char;
                let d = (b'a' + (i / 26) as u8) as char;
                format!("!{}{}:bench.example", c, d.to_string().repeat(25))
                    .parse()
                    .unwrap()
            })
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        Bench {
            store,
            topics,
            next: (0..TASKS).map(|_| AtomicU64::new(0)).collect(),
            rt,
        }
    }

    /// One round: every task appends one entry and (if `sync`) waits for it to be durable.
    async fn round(self: &Arc<Self>, sync: bool) {
        let mut handles = Vec::with_capacity(TASKS);
        for task in 0..TASKS {
            let b = self.clone();
            handles.push(tokio::spawn(async move {
                let index = b.next[task].fetch_add(1, Ordering::Relaxed);
                let mut tag = [0u8; 32];
                tag[..8].copy_from_slice(&index.to_be_bytes());
                b.store
                    .append(
                        &b.topics[task],
                        Append {
                            index,
                            entry: vec![0x5a; 300],
                            change: false,
                            tag: Some(tag),
                            nodes: vec![(0, index, [1; 32])],
                            memberships: vec![],
                            created_by: None,
                        },
                    )
                    .unwrap();
                if sync {
                    b.store.sync().await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    }
}

fn benches(c: &mut Criterion) {
    let bench = Arc::new(Bench::new());

    // Plain timed runs, for figures to quote: without and with `sync`.
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        bench.rt.block_on(bench.round(false));
        rounds += 1;
    }
    println!(
        "{TASKS} tasks × append (no sync): {:.0} writes/s",
        (rounds * TASKS as u64) as f64 / start.elapsed().as_secs_f64()
    );

    // Start the synced run with nothing left to flush from the run above.
    bench.rt.block_on(bench.store.sync()).unwrap();
    let start = Instant::now();
    let flushes = bench.store.flushes();
    let mut rounds = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        bench.rt.block_on(bench.round(true));
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let writes = rounds * TASKS as u64;
    println!(
        "{TASKS} tasks × (append + sync): {:.0} durable writes/s, {:.1} writes per flush",
        writes as f64 / secs,
        writes as f64 / (bench.store.flushes() - flushes).max(1) as f64
    );

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.bench_function("append_sync_64_tasks", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                bench.rt.block_on(bench.round(true));
            }
            start.elapsed()
        })
    });
    group.finish();
}

criterion_group!(store, benches);
criterion_main!(store);
