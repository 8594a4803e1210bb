#!/usr/bin/env python3
"""Splits a `perf script` dump of the homeserver (recorded by `rdv-load --perf`, dwarf call
graphs) into where-the-time-goes categories. Each sample goes to the first category, in the order
below, that matches any frame of its stack; so a kernel `fsync` under sled's flush counts as the
flush, and the verification inside `check_message` counts as verification.

    perf script -i perf.data -F tid,sym --no-inline | python3 benches/profile/classify.py
"""
import re
import sys
from collections import Counter

CATEGORIES = [
    ("Ed25519 verify of the message signature", [r"MessageIn::verify", r"verify_strict"]),
    ("Ed25519 checkpoint signing (per append)", [r"sign_checkpoint", r"SignedCheckpoint::sign"]),
    ("durability: sled log pwrite + sync_file_range (flush)", [
        r"IoBufs::write_to_log", r"sync_file_range", r"pwrite", r"iobuf::flush",
        r"make_stable", r"start_flush", r"Store>::sync"]),
    ("sled background-thread handoffs (futex wait/wake, scheduler)", [r"sled::threadpool"]),
    ("sled append transaction (entry, tag, nodes)", [r"Store>::append", r"sled::transaction"]),
    ("replay check: tag lookup in sled", [r"StoreTags", r"check_message"]),
    ("token auth (SHA-256, 3 sled reads, last-seen)", [r"server::state::authenticate",
                                                      r"Caller as actix_web"]),
    ("push hub (incl. sled device scan) + WebSocket frames", [
        r"server::push", r"api::stream", r"actix_ws", r"ws::Codec"]),
    ("other sled", [r"sled::"]),
    ("Merkle frontier / SHA-256 of leaves", [r"topics::grown", r"tlog::"]),
    ("TLS + socket I/O (rustls, tokio-rustls, TCP syscalls)", [
        r"rustls", r"^ring::", r"ring_core", r"tcp_", r"sock_", r"__sys_sendto",
        r"__sys_recvfrom"]),
    ("CBOR (ciborium)", [r"ciborium"]),
    ("HTTP (actix-http/web, routing, handlers)", [r"actix_http", r"actix_web", r"actix_router",
                                                  r"regex_lite", r"actix_server"]),
    ("metrics / tracing", [r"prometheus", r"tracing"]),
    ("async runtime + thread wakeups (tokio, futex, scheduler)", [r"tokio::", r"futex",
                                                                  r"schedule",
                                                                  r"finish_task_switch"]),
]
COMPILED = [(name, [re.compile(p) for p in pats]) for name, pats in CATEGORIES]


def samples(lines):
    cur = []
    for line in lines:
        if not line.strip():
            if cur:
                yield cur
                cur = []
            continue
        cur.append(line.strip())
    if cur:
        yield cur


def main():
    counts = Counter()
    total = 0
    for s in samples(sys.stdin):
        frames = s[1:]
        total += 1
        for name, pats in COMPILED:
            if any(p.search(f) for f in frames for p in pats):
                counts[name] += 1
                break
        else:
            counts["other (" + (frames[0].split(" ", 1)[-1][:50] if frames else "?") + ")"] += 1
    print(f"{total} samples")
    others = 0
    for name, _ in CATEGORIES:
        print(f"{100.0 * counts[name] / max(total, 1):5.1f}%  {name}")
    for name, n in counts.most_common():
        if name.startswith("other ("):
            others += n
    print(f"{100.0 * others / max(total, 1):5.1f}%  other")
    for name, n in counts.most_common():
        if name.startswith("other (") and n * 200 > total:
            print(f"        {100.0 * n / total:4.1f}%  {name}")


if __name__ == "__main__":
    main()
