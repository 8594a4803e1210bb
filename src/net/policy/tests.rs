//! One test per special range of `client-api.md` §7.2: an address at each end of the range is
//! refused, the first address past it is not.
use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn refused(s: &str) -> bool {
    OutboundPolicy::default().check(ip(s)).is_err()
}

/// Every address of `inside` refused, every one of `outside` admitted.
fn range(inside: &[&str], outside: &[&str]) {
    for a in inside {
        assert!(refused(a), "{a} must be refused");
    }
    for a in outside {
        assert!(!refused(a), "{a} must be admitted");
    }
}

#[test]
fn this_network() {
    range(&["0.0.0.0", "0.255.255.255"], &["1.0.0.0"]);
}

#[test]
fn loopback() {
    range(
        &["127.0.0.1", "127.255.255.255", "127.0.0.0"],
        &["128.0.0.0", "126.255.255.255"],
    );
}

#[test]
fn rfc1918() {
    range(
        &["10.0.0.0", "10.255.255.255"],
        &["11.0.0.0", "9.255.255.255"],
    );
    range(
        &["172.16.0.0", "172.31.255.255"],
        &["172.32.0.0", "172.15.255.255"],
    );
    range(
        &["192.168.0.0", "192.168.255.255"],
        &["192.169.0.0", "192.167.255.255"],
    );
}

#[test]
fn cgnat() {
    range(
        &["100.64.0.0", "100.127.255.255"],
        &["100.128.0.0", "100.63.255.255"],
    );
}

#[test]
fn link_local_v4() {
    // The cloud metadata address is in it.
    range(
        &["169.254.0.0", "169.254.169.254", "169.254.255.255"],
        &["169.255.0.0"],
    );
}

#[test]
fn ietf_and_benchmarking() {
    range(&["192.0.0.0", "192.0.0.255"], &["192.0.1.0"]);
    range(
        &["198.18.0.0", "198.19.255.255"],
        &["198.20.0.0", "198.17.255.255"],
    );
}

#[test]
fn documentation_v4() {
    range(&["192.0.2.0", "192.0.2.255"], &["192.0.3.0"]);
    range(&["198.51.100.0", "198.51.100.255"], &["198.51.101.0"]);
    range(&["203.0.113.0", "203.0.113.255"], &["203.0.114.0"]);
}

#[test]
fn multicast_reserved_broadcast() {
    range(
        &[
            "224.0.0.0",
            "239.255.255.255",
            "240.0.0.0",
            "255.255.255.255",
        ],
        &["223.255.255.255"],
    );
}

#[test]
fn unspecified_and_loopback_v6() {
    range(&["::", "::1"], &["2606:4700::1111"]);
}

#[test]
fn ipv4_mapped_compatible_and_nat64_are_judged_by_their_ipv4() {
    range(
        &[
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::192.168.1.1",
        ],
        &["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::8.8.8.8"],
    );
}

#[test]
fn unique_local_and_site_local() {
    range(
        &["fc00::", "fdff:ffff::1", "fec0::1", "feff:ffff::1"],
        &["fbff::1"],
    );
}

#[test]
fn local_use_nat64() {
    range(&["64:ff9b:1::", "64:ff9b:1:ffff::1"], &["64:ff9b:2::1"]);
}

#[test]
fn link_local_v6() {
    range(&["fe80::1", "febf::1"], &[]);
}

#[test]
fn discard_and_ietf_v6() {
    range(&["100::", "100::ffff:ffff:ffff:ffff"], &["100:0:0:1::"]);
    // Teredo (2001::/32) is in 2001::/23.
    range(
        &["2001::", "2001:0:4136:e378::1", "2001:1ff::1"],
        &["2001:200::1", "2001:4860::8888"],
    );
}

#[test]
fn documentation_v6() {
    range(
        &["2001:db8::", "2001:db8:ffff::1", "3fff::", "3fff:fff::1"],
        &["3fff:1000::1"],
    );
}

#[test]
fn multicast_v6() {
    range(&["ff00::", "ff02::1", "ffff::1"], &["fe00::1"]);
}

#[test]
fn six_to_four_is_judged_by_its_ipv4() {
    // 2002:7f00:0001:: carries 127.0.0.1, 2002:0a00:0001:: 10.0.0.1.
    range(
        &["2002:7f00:1::", "2002:a00:1::1", "2002:c0a8:101::"],
        &["2002:808:808::1"],
    );
}

#[test]
fn one_refused_address_refuses_the_target() {
    let addrs: Vec<SocketAddr> = vec![
        "8.8.8.8:443".parse().unwrap(),
        "10.0.0.1:443".parse().unwrap(),
    ];
    let e = OutboundPolicy::default().check_all(&addrs).unwrap_err();
    assert_eq!(e.addr, ip("10.0.0.1"));
    assert!(e.to_string().contains("not a public address"), "{e}");
}

#[test]
fn the_switch_admits_everything() {
    let any = OutboundPolicy::any();
    for a in [
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "169.254.169.254",
        "fe80::1",
        "0.0.0.0",
    ] {
        assert!(any.check(ip(a)).is_ok(), "{a}");
    }
}

#[test]
fn allowed_ranges_admit_private_addresses_but_never_this_machine() {
    let policy = OutboundPolicy::from_config(&crate::config::Outbound {
        allow_private_targets: false,
        allow_cidrs: vec![
            "10.20.0.0/16".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
            "::/0".parse().unwrap(),
        ],
    });
    assert!(policy.check(ip("10.20.3.4")).is_ok());
    assert!(policy.check(ip("::ffff:10.20.3.4")).is_ok());
    assert!(
        policy.check(ip("192.168.1.1")).is_ok(),
        "0.0.0.0/0 admits private ranges"
    );
    for a in [
        "127.0.0.1",
        "0.0.0.0",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "2002:7f00:1::",
    ] {
        assert!(
            policy.check(ip(a)).is_err(),
            "{a} is admitted only by the switch"
        );
    }
    let narrow = OutboundPolicy::from_config(&crate::config::Outbound {
        allow_private_targets: false,
        allow_cidrs: vec!["10.20.0.0/16".parse().unwrap()],
    });
    assert!(narrow.check(ip("10.21.0.1")).is_err());
}

#[test]
fn ranges_parse() {
    let c: Cidr = "10.20.0.0/16".parse().unwrap();
    assert!(c.contains(ip("10.20.255.255")) && !c.contains(ip("10.21.0.0")));
    assert!(!c.contains(ip("::ffff:10.20.0.1")), "families do not mix");
    let one: Cidr = "192.0.2.7".parse().unwrap();
    assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
    let v6: Cidr = "fd00::/8".parse().unwrap();
    assert!(v6.contains(ip("fdab::1")) && !v6.contains(ip("fe00::1")));
    assert_eq!(one.to_string(), "192.0.2.7/32");
    for bad in [
        "",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "host/8",
        "10.0.0/8",
    ] {
        assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
    }
}
