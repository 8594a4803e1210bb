use std::net::IpAddr;

use super::*;

fn limits(rate: RateConfig) -> Limits {
    match Limits::new(&rate, &PeerRateConfig::default()) {
        Ok(l) => l,
        Err(e) => unreachable!("{e}"),
    }
}

#[test]
fn a_burst_passes_then_the_next_request_waits() {
    let l = limits(RateConfig {
        login_ip: Rate::minute(60, 3),
        ..RateConfig::default()
    });
    for _ in 0..3 {
        assert_eq!(l.login_ip.check("203.0.113.7", 1), Ok(()));
    }
    let refused = l.login_ip.check("203.0.113.7", 1);
    assert_eq!(
        refused,
        Err(Limited {
            class: "login_ip",
            retry_after_secs: 1
        })
    );
    // Another key has its own cells.
    assert_eq!(l.login_ip.check("203.0.113.8", 1), Ok(()));
    let rows = l.limited();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].class, rows[0].key.as_str()),
        ("login_ip", "203.0.113.7")
    );
    assert_eq!(rows[0].refused, 1);
}

#[test]
fn a_cost_is_taken_all_or_none() {
    let l = limits(RateConfig {
        claim: Rate::hour(600, 1000),
        ..RateConfig::default()
    });
    assert_eq!(l.claim.check("@eve:x", 999), Ok(()));
    // Two more do not fit; nothing is taken, so one still does.
    let refused = l.claim.check("@eve:x", 2);
    assert!(
        matches!(refused, Err(Limited { class: "claim", retry_after_secs }) if retry_after_secs >= 1)
    );
    assert_eq!(l.claim.check("@eve:x", 1), Ok(()));
    // A cost above the burst never passes, and says when a full burst would be back.
    let l = limits(RateConfig::default());
    let never = l.claim.check("@bob:x", 1001);
    assert!(matches!(never, Err(Limited { retry_after_secs, .. }) if retry_after_secs >= 3600));
}

#[test]
fn config_refuses_rates_that_are_not_rates() {
    let bad = |rate: Rate| {
        Limits::new(
            &RateConfig {
                send: rate,
                ..RateConfig::default()
            },
            &PeerRateConfig::default(),
        )
        .is_err()
    };
    assert!(bad(Rate::second(0, 5)));
    assert!(bad(Rate::second(5, 0)));
    assert!(bad(Rate {
        per_second: Some(1),
        per_minute: Some(1),
        per_hour: None,
        burst: 1
    }));
    assert!(bad(Rate {
        per_second: None,
        per_minute: None,
        per_hour: None,
        burst: 1
    }));
    // A send_kib burst below one largest change could never pass one.
    let small = RateConfig {
        send_kib: Rate::second(256, 64),
        ..RateConfig::default()
    };
    assert!(Limits::new(&small, &PeerRateConfig::default()).is_err());
}

#[test]
fn ipv6_callers_share_their_64_and_exempt_addresses_pass() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1"
        .parse()
        .unwrap_or(IpAddr::from([0; 4]));
    let b: IpAddr = "2001:db8:1:2:bbbb::9"
        .parse()
        .unwrap_or(IpAddr::from([0; 4]));
    assert_eq!(ip_key(a), ip_key(b));
    assert_eq!(ip_key(a), "2001:db8:1:2::/64");
    let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap_or(IpAddr::from([0; 4]));
    assert_eq!(ip_key(mapped), "203.0.113.7");
    let l = limits(RateConfig {
        any_ip: Rate::second(1, 1),
        exempt_ips: vec![IpAddr::from([127, 0, 0, 9])],
        ..RateConfig::default()
    });
    assert_eq!(l.check_ip(&l.any_ip, Some(a)), Ok(()));
    assert!(l.check_ip(&l.any_ip, Some(b)).is_err());
    for _ in 0..10 {
        assert_eq!(
            l.check_ip(&l.any_ip, Some(IpAddr::from([127, 0, 0, 9]))),
            Ok(())
        );
    }
}
