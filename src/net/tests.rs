use super::*;

#[test]
fn numeric_hosts_are_not_names() {
    for host in [
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "0x7f000001",
        "127.1",
        "1.2.3",
        "a.0x1f",
    ] {
        assert!(
            matches!(Host::parse(host), Err(HostError::Numeric(_))),
            "{host}"
        );
    }
}

#[test]
fn localhost_is_not_a_name() {
    for host in [
        "localhost",
        "LOCALHOST",
        "localhost.",
        "a.localhost",
        "x.y.Localhost",
    ] {
        assert!(
            matches!(Host::parse(host), Err(HostError::Localhost(_))),
            "{host}"
        );
    }
}

#[test]
fn names_and_literals() {
    assert_eq!(
        Host::parse("Push.Example.COM.").unwrap(),
        Host::Name("push.example.com".into())
    );
    assert_eq!(
        Host::parse("a1.example").unwrap(),
        Host::Name("a1.example".into())
    );
    assert_eq!(
        Host::parse("127.0.0.1").unwrap(),
        Host::Ip("127.0.0.1".parse().unwrap())
    );
    assert_eq!(
        Host::parse("[::1]").unwrap(),
        Host::Ip("::1".parse().unwrap())
    );
    for bad in ["", ".", "a..b", "a_b.example", "a b", "-", &"a".repeat(64)] {
        assert!(
            matches!(
                Host::parse(bad),
                Err(HostError::Invalid(_)) | Err(HostError::Numeric(_))
            ),
            "{bad:?}"
        );
    }
}
