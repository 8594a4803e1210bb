//! Core protocol benchmarks (`BENCHMARKS.md`, "Protocol core (criterion)").
//!
//! One criterion run measures, side by side:
//! 1. the reference: bare `ed25519_dalek` sign and `verify_strict` of a 100-byte message;
//! 2. the message send path (`encrypt`: XChaCha20 + HMAC tag + TK signature, with precomputed
//!    [`EpochKeys`]) and the full receive path a member runs (`MessageIn::from_wire` + `verify` +
//!    `open`) at 100 B, 1 KiB and 64 KiB, plus a breakdown of the receive path at 100 B;
//! 3. key distribution: `ChangeBuilder` with `Rekey` on a topic of n = 2, 10, 100, 1000 members (one
//!    HPKE box per member), with the change's wire size printed once per n;
//! 4. the per-message overhead (wire length − plaintext length at 100 B), printed.
//!
//! The `cpu_time/…` group repeats the four figures that the targets compare (bare sign, bare
//! `verify_strict`, encrypt and receive at 100 B) measured in thread CPU time instead of wall
//! time: on a shared machine other processes stretch wall time but not this thread's CPU time.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use ed25519_dalek::{Signer, SigningKey};

use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{
    EpochKeys, IdentityKey, MessageKey, Randomness, ServerKey, Suite, TopicKey,
};
use rendezvous_protocol::ids::{Epoch, ServerName, TopicId, UserId};
use rendezvous_protocol::message::{MessageIn, encrypt};
use rendezvous_protocol::tlog::{LogHash, RootAt, Roots, TreeSize, leaf_hash};
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, ChangeOutcome, History, HostKey, MemberIndex, MemberSpec, Role,
    TopicState,
};
use rendezvous_protocol::wire::Signed;

const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;
/// Plaintext sizes of the message benchmarks.
const SIZES: [(usize, &str); 3] = [(100, "100B"), (1024, "1KiB"), (64 * 1024, "64KiB")];
/// Topic sizes of the key-distribution benchmark.
const MEMBERS: [usize; 4] = [2, 10, 100, 1000];
/// The overhead budget of federation-spec/architecture.md §4.
const OVERHEAD_BUDGET: usize = 140;

/// A realistic sender: member index and seen log size that need multi-byte CBOR integers.
const SENDER: MemberIndex = MemberIndex(1000);
const SEEN: TreeSize = TreeSize(60_000);

struct MessageSetup {
    topic: TopicId,
    keys: EpochKeys,
    tk: TopicKey,
    /// The reader's own roots of a log of `SEEN` entries (as a replaying client keeps them).
    roots: Roots,
    /// The root at `SEEN`, which the sender signs over.
    seen_root: LogHash,
}

fn server() -> ServerName {
    "a.example".parse().expect("server name")
}

fn message_setup() -> MessageSetup {
    let topic = TopicId::random(&server());
    let keys = MessageKey::generate().epoch_keys(&topic, Epoch(3));
    let mut roots = Roots::new();
    for i in 0..SEEN.get() {
        roots.append(&i.to_be_bytes()).expect("append");
    }
    let seen_root = roots.root();
    MessageSetup {
        topic,
        keys,
        tk: TopicKey::generate(SUITE),
        roots,
        seen_root,
    }
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn reference(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    let msg = plaintext(100);
    let sig = key.sign(&msg);
    assert!(public.verify_strict(&msg, &sig).is_ok());

    let mut g = c.benchmark_group("reference");
    g.bench_function("ed25519_sign/100B", |b| {
        b.iter(|| key.sign(black_box(&msg)))
    });
    g.bench_function("ed25519_verify_strict/100B", |b| {
        b.iter(|| public.verify_strict(black_box(&msg), black_box(&sig)))
    });
    g.finish();
}

fn messages(c: &mut Criterion) {
    let s = message_setup();
    let signing_public = s.tk.public().signing.clone();

    // Overhead: everything but the plaintext, at 100 B. Printed, not asserted (criterion keeps
    // no byte figures); the header's integers grow with the sender index and the log size.
    let pt = plaintext(100);
    for (sender, seen, what) in [
        (1, 10, "small topic"),
        (SENDER.get(), SEEN.get(), "reference case"),
        (SENDER.get(), 1_000_000, "log past 65535 entries"),
        (4999, 5_000_000_000, "largest sender, log past 2^32"),
    ] {
        let msg = encrypt(
            &s.topic,
            &s.keys,
            MemberIndex(sender),
            s.tk.signing(),
            TreeSize(seen),
            &s.seen_root,
            &pt,
        )
        .expect("encrypt");
        let wire = msg.to_wire();
        let header_len = msg.header().to_bytes().len();
        let overhead = wire.len() - pt.len();
        eprintln!(
            "message overhead ({what}: sender {sender}, seen {seen}): wire {} B - plaintext {} B = {overhead} B \
             (header {header_len} B) -> {} the {OVERHEAD_BUDGET} B budget",
            wire.len(),
            pt.len(),
            if overhead <= OVERHEAD_BUDGET {
                "within"
            } else {
                "OVER"
            }
        );
    }

    let mut g = c.benchmark_group("message");
    for (len, name) in SIZES {
        let pt = plaintext(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("encrypt", name), &pt, |b, pt| {
            b.iter(|| {
                encrypt(
                    &s.topic,
                    &s.keys,
                    SENDER,
                    s.tk.signing(),
                    SEEN,
                    &s.seen_root,
                    black_box(pt),
                )
                .expect("encrypt")
            })
        });
        let wire = encrypt(
            &s.topic,
            &s.keys,
            SENDER,
            s.tk.signing(),
            SEEN,
            &s.seen_root,
            &pt,
        )
        .expect("encrypt")
        .to_wire();
        // Sanity: the receive path round-trips.
        let opened = MessageIn::from_wire(&wire)
            .and_then(|m| m.verify(&s.topic, &signing_public, &s.seen_root))
            .and_then(|m| m.open(&s.topic, &s.keys))
            .expect("receive");
        assert_eq!(&opened[..], &pt[..]);
        g.bench_with_input(BenchmarkId::new("receive", name), &wire, |b, wire| {
            b.iter(|| {
                let msg = MessageIn::from_wire(black_box(wire)).expect("from_wire");
                // The reader's own root at `seen` (fork binding), then the signature.
                let root = s.roots.root_at(msg.header().seen).expect("root");
                let msg = msg
                    .verify(&s.topic, &signing_public, &root)
                    .expect("verify");
                msg.open(&s.topic, &s.keys).expect("open")
            })
        });
    }
    g.finish();

    // Where the time of each path goes, at 100 B.
    let pt = plaintext(100);
    let msg = encrypt(
        &s.topic,
        &s.keys,
        SENDER,
        s.tk.signing(),
        SEEN,
        &s.seen_root,
        &pt,
    )
    .expect("encrypt");
    let wire = msg.to_wire();
    let decoded = MessageIn::from_wire(&wire).expect("from_wire");
    let mut g = c.benchmark_group("message_parts/100B");
    g.bench_function("to_wire", |b| b.iter(|| black_box(&msg).to_wire()));
    g.bench_function("from_wire", |b| {
        b.iter(|| MessageIn::from_wire(black_box(&wire)).expect("from_wire"))
    });
    g.bench_function("verify", |b| {
        b.iter_batched(
            || decoded.clone(),
            |m| {
                let root = s.roots.root_at(m.header().seen).expect("root");
                m.verify(&s.topic, &signing_public, &root).expect("verify")
            },
            BatchSize::SmallInput,
        )
    });
    // What a replaying reader pays per entry to keep its roots (fork binding): the leaf hash,
    // the frontier append and the fold to the new root, at a log of `SEEN` entries.
    let leaf = msg.leaf_data();
    g.bench_function("roots_append", |b| {
        b.iter_batched(
            || s.roots.frontier().clone(),
            |mut f| {
                f.append_leaf_hash(leaf_hash(black_box(&leaf)), |_, _, _| {})
                    .expect("append");
                f.root()
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("open", |b| {
        b.iter(|| black_box(&msg).open(&s.topic, &s.keys).expect("open"))
    });
    g.finish();
}

/// A member about to be added: its spec and its private Topic Key.
fn member(i: usize, role: Role) -> (MemberSpec, TopicKey) {
    let user = UserId::new(&format!("user{i}"), &server()).expect("user id");
    let ik = IdentityKey::generate();
    let tk = TopicKey::generate(SUITE);
    let cert = Signed::sign(
        TopicKeyCert::new(user.clone(), tk.public(), 1_700_000_000),
        &ik,
    )
    .unverified();
    let spec = MemberSpec {
        user,
        identity_key: ik.public().clone(),
        role,
        topic_key_cert: cert,
    };
    (spec, tk)
}

/// A topic of `n` members created by member 0 (an admin) with `Action::Create`.
fn topic_with(n: usize) -> (TopicState, TopicKey) {
    let topic = TopicId::random(&server());
    let mut specs = Vec::with_capacity(n);
    let mut creator_key = None;
    for i in 0..n {
        let (spec, tk) = member(i, if i == 0 { Role::Admin } else { Role::Writer });
        if i == 0 {
            creator_key = Some(tk);
        }
        specs.push(spec);
    }
    let creator_key = creator_key.expect("n >= 1");
    let (outcome, key) = ChangeBuilder::create(
        &topic,
        &creator_key,
        History::Shared,
        specs,
        HostKey::of(ServerKey::generate().public()),
    )
    .build(1_700_000_000, &mut Randomness::Os)
    .expect("create");
    assert!(key.is_some());
    assert_eq!(outcome.next.members().len(), n);
    (outcome.next, creator_key)
}

fn rekey(state: &TopicState, admin: &TopicKey) -> ChangeOutcome {
    // The root binding is a 32-byte transcript part; any root does for the cost.
    let root = leaf_hash(b"log root");
    let (outcome, key) = ChangeBuilder::new(state, root, MemberIndex(0), admin, Action::Rekey)
        .build(1_700_000_001, &mut Randomness::Os)
        .expect("rekey");
    debug_assert!(key.is_some());
    outcome
}

fn key_distribution(c: &mut Criterion) {
    let mut g = c.benchmark_group("seal_message_key");
    let mut sizes = Vec::new();
    for n in MEMBERS {
        let (state, admin) = topic_with(n);
        let outcome = rekey(&state, &admin);
        assert_eq!(outcome.change.boxes.len(), n, "one box per member");
        let total = outcome.change.to_wire().len();
        let box_len = rendezvous_protocol::wire::encode(&outcome.change.boxes[0]).len();
        sizes.push((n, total, box_len));
        eprintln!(
            "rekey n={n}: change wire size {total} B, {:.1} B/member (one box: {box_len} B)",
            total as f64 / n as f64
        );
        if n >= 100 {
            // One iteration takes milliseconds: a few flat samples are enough.
            g.sampling_mode(SamplingMode::Flat).sample_size(10);
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("rekey", n), &n, |b, _| {
            b.iter(|| rekey(&state, &admin))
        });
    }
    g.finish();
    // Marginal cost per member: the change grows by exactly the same amount for every member.
    for w in sizes.windows(2) {
        let ((n0, t0, _), (n1, t1, _)) = (w[0], w[1]);
        eprintln!(
            "rekey n={n0}->{n1}: marginal {:.1} B/member",
            (t1 - t0) as f64 / (n1 - n0) as f64
        );
    }
}

/// Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`) as a criterion measurement.
mod cpu {
    use std::time::Duration;

    use criterion::Throughput;
    use criterion::measurement::{Measurement, ValueFormatter};

    /// CPU time consumed by the benchmarking thread.
    pub struct ThreadCpuTime;

    fn now() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux supports.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    impl Measurement for ThreadCpuTime {
        type Intermediate = Duration;
        type Value = Duration;

        fn start(&self) -> Duration {
            now()
        }
        fn end(&self, start: Duration) -> Duration {
            now().saturating_sub(start)
        }
        fn add(&self, a: &Duration, b: &Duration) -> Duration {
            *a + *b
        }
        fn zero(&self) -> Duration {
            Duration::ZERO
        }
        fn to_f64(&self, value: &Duration) -> f64 {
            value.as_nanos() as f64
        }
        fn formatter(&self) -> &dyn ValueFormatter {
            &CpuFormatter
        }
    }

    struct CpuFormatter;

    impl ValueFormatter for CpuFormatter {
        fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
            let (factor, unit) = match typical_ns {
                t if t < 1e3 => (1.0, "ns (cpu)"),
                t if t < 1e6 => (1e-3, "µs (cpu)"),
                t if t < 1e9 => (1e-6, "ms (cpu)"),
                _ => (1e-9, "s (cpu)"),
            };
            values.iter_mut().for_each(|v| *v *= factor);
            unit
        }

        fn scale_throughputs(
            &self,
            _typical: f64,
            throughput: &Throughput,
            values: &mut [f64],
        ) -> &'static str {
            let (per, unit) = match throughput {
                Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (*n as f64, "B/s (cpu)"),
                Throughput::Elements(n) => (*n as f64, "elem/s (cpu)"),
                _ => (1.0, "ops/s (cpu)"),
            };
            values.iter_mut().for_each(|v| *v = per * 1e9 / *v);
            unit
        }

        fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
            "ns"
        }
    }
}

/// The four figures of the targets again, in thread CPU time.
fn cpu_time(c: &mut Criterion<cpu::ThreadCpuTime>) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    let msg = plaintext(100);
    let sig = key.sign(&msg);
    let s = message_setup();
    let signing_public = s.tk.public().signing.clone();
    let wire = encrypt(
        &s.topic,
        &s.keys,
        SENDER,
        s.tk.signing(),
        SEEN,
        &s.seen_root,
        &msg,
    )
    .expect("encrypt")
    .to_wire();

    let mut g = c.benchmark_group("cpu_time");
    g.bench_function("reference/ed25519_sign/100B", |b| {
        b.iter(|| key.sign(black_box(&msg)))
    });
    g.bench_function("reference/ed25519_verify_strict/100B", |b| {
        b.iter(|| public.verify_strict(black_box(&msg), black_box(&sig)))
    });
    g.bench_function("message/encrypt/100B", |b| {
        b.iter(|| {
            encrypt(
                &s.topic,
                &s.keys,
                SENDER,
                s.tk.signing(),
                SEEN,
                &s.seen_root,
                black_box(&msg),
            )
            .expect("encrypt")
        })
    });
    g.bench_function("message/receive/100B", |b| {
        b.iter(|| {
            let m = MessageIn::from_wire(black_box(&wire)).expect("from_wire");
            let root = s.roots.root_at(m.header().seen).expect("root");
            let m = m.verify(&s.topic, &signing_public, &root).expect("verify");
            m.open(&s.topic, &s.keys).expect("open")
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = reference, messages, key_distribution
}
criterion_group! {
    name = cpu_benches;
    config = Criterion::default()
        .with_measurement(cpu::ThreadCpuTime)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = cpu_time
}
criterion_main!(benches, cpu_benches);
