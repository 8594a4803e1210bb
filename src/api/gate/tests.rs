//! The policy table is the spec's (`client-api.md` §1.2), row for row, and every route has one.

use super::*;

const SPEC: &str = include_str!("../../../federation-spec/client-api.md");
const ROUTES: [&str; 7] = [
    include_str!("../accounts.rs"),
    include_str!("../directory.rs"),
    include_str!("../keys.rs"),
    include_str!("../relay.rs"),
    include_str!("../topics.rs"),
    include_str!("../stream.rs"),
    include_str!("../status.rs"),
];

fn class_name(c: Class) -> &'static str {
    match c {
        Class::LoginIp => "login_ip",
        Class::RegisterIp => "register_ip",
        Class::DevicesIp => "devices_ip",
        Class::LinkOpen => "link_open",
        Class::LinkRelayIp => "link_relay_ip",
        Class::LinkRelay => "link_relay",
        Class::TopicCreate => "topic_create",
        Class::Send => "send",
        Class::SendKib => "send_kib",
        Class::Identity => "identity",
        Class::Push => "push",
        Class::Upload => "upload",
        Class::Stream => "stream",
    }
}

type Row = (String, String, String, usize, Vec<String>);

/// The rows of the §1.2 table: (method, path, auth, cap, classes).
fn spec_rows() -> Vec<Row> {
    let start = SPEC.find("### 1.2").unwrap_or(0);
    let end = SPEC[start..]
        .find("### 1.3")
        .map_or(SPEC.len(), |e| start + e);
    SPEC[start..end]
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').map(str::trim).collect();
            let endpoint = cells[0].trim_matches('`');
            let (method, path) = endpoint.split_once(' ').unwrap_or(("", endpoint));
            let classes = cells[3]
                .split(',')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            (
                method.to_owned(),
                path.to_owned(),
                cells[1].to_owned(),
                cells[2].parse().unwrap_or(usize::MAX),
                classes,
            )
        })
        .collect()
}

#[test]
fn the_policy_table_is_the_specs() {
    let rows = spec_rows();
    assert_eq!(rows.len(), POLICIES.len(), "rows in client-api.md §1.2");
    for (policy, row) in POLICIES.iter().zip(&rows) {
        let auth = match policy.auth {
            Auth::None => "none",
            Auth::Token => "token",
        };
        let classes: Vec<String> = policy
            .classes
            .iter()
            .map(|c| class_name(*c).to_owned())
            .collect();
        assert_eq!(
            (policy.method, policy.path, auth, policy.cap, classes),
            (
                row.0.as_str(),
                row.1.as_str(),
                row.2.as_str(),
                row.3,
                row.4.clone()
            ),
        );
    }
}

#[test]
fn every_route_has_a_policy() {
    let mut routes = 0;
    for source in ROUTES {
        // `.route("/v1/…", web::post()…`, the path perhaps on the next line.
        let flat: String = source.split_whitespace().collect::<Vec<_>>().join(" ");
        for part in flat.split(".route(").skip(1) {
            let Some(path) = part
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
            else {
                continue;
            };
            let method = part
                .split("web::")
                .nth(1)
                .and_then(|m| m.split('(').next())
                .unwrap_or("")
                .to_uppercase();
            routes += 1;
            let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
            assert!(
                policy(&method, path).is_some(),
                "no policy for {method} {path}"
            );
        }
    }
    assert_eq!(routes, POLICIES.len(), "routes found in src/api");
}
