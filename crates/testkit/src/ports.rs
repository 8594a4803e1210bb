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

/// An address on `ip` (of 127.0.0.0/8) that was free a moment ago.
pub fn free_addr_on(ip: impl Into<IpAddr>) -> SocketAddr {
    TcpListener::bind((ip.into(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
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
