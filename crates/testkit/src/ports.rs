//! Loopback ports. A server that binds port 0 itself never races; these are for addresses that
//! must be known before the server starts (written into DNS, kept across a restart).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

/// A port free on `ip` a moment ago.
pub fn free_port(ip: impl Into<IpAddr>) -> u16 {
    free_addr_on(ip).port()
}

/// An address on 127.0.0.1 that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    free_addr_on(Ipv4Addr::LOCALHOST)
}

/// Where [`free_addr_on`] picks ports: below Linux's default ephemeral range (32768–60999), so
/// that the outgoing connections of other tests running at the same time (which take ephemeral
/// ports) never take a port a test chose before its server binds it.
const PICK_FROM: std::ops::Range<u16> = 20_000..32_000;

/// An address on `ip` (of 127.0.0.0/8) that was free a moment ago.
pub fn free_addr_on(ip: impl Into<IpAddr>) -> SocketAddr {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Ports handed out by this process: two tests of one binary (threads) never get the same
    // port, even when the first has not bound it yet — the window in which a port that was
    // free a moment ago is not free any more, which made servers of two tests meet.
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let ip = ip.into();
    let span = u64::from(PICK_FROM.end - PICK_FROM.start);
    for _ in 0..1_000 {
        // Random per process and call, so that test binaries running at once pick apart.
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let offset = RandomState::new().hash_one((n, std::process::id())) % span;
        let port = PICK_FROM.start + u16::try_from(offset).unwrap();
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed.contains(&port) {
            continue;
        }
        if let Ok(l) = TcpListener::bind((ip, port)) {
            handed.push(port);
            return l.local_addr().unwrap();
        }
    }
    panic!("no free port on {ip} in {PICK_FROM:?}")
}

/// Binds `addr`, waiting while a server stopped a moment ago still holds it.
pub fn bind_retrying(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}
