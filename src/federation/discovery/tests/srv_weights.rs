//! The weighted random order of SRV records of one priority (RFC 2782).

use super::*;

fn record(priority: u16, weight: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port: 1,
        target: target.to_owned(),
    }
}

/// splitmix64 with a fixed seed: reproducible draws.
fn seeded(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % (n + 1)
    }
}

#[test]
fn weights_are_respected_over_many_draws() {
    let records = vec![
        record(5, 0, "zero."),
        record(5, 60, "sixty."),
        record(1, 0, "only-zero."),
        record(5, 30, "thirty."),
        record(5, 10, "ten."),
        record(9, 0, "last-a."),
        record(9, 0, "last-b."),
    ];
    let mut draw = seeded(42);
    let mut first_in_group = HashMap::<String, u32>::new();
    let draws = 20_000;
    for _ in 0..draws {
        let ordered = order_srv(records.clone(), &mut draw);
        let targets: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets.len(), records.len(), "nothing lost or repeated");
        assert_eq!(targets[0], "only-zero.");
        let mut group: Vec<&str> = targets[1..5].to_vec();
        group.sort_unstable();
        assert_eq!(group, ["sixty.", "ten.", "thirty.", "zero."]);
        assert_eq!(targets[5..], ["last-a.", "last-b."]);
        *first_in_group.entry(targets[1].to_owned()).or_default() += 1;
    }
    // Weights 60:30:10 out of 100; weight 0 only on a draw of exactly 0 (1 in 101).
    let share = |t: &str| f64::from(first_in_group.get(t).copied().unwrap_or(0)) / f64::from(draws);
    assert!(
        (share("sixty.") - 0.60 * 100.0 / 101.0).abs() < 0.02,
        "{first_in_group:?}"
    );
    assert!(
        (share("thirty.") - 0.30 * 100.0 / 101.0).abs() < 0.02,
        "{first_in_group:?}"
    );
    assert!(
        (share("ten.") - 0.10 * 100.0 / 101.0).abs() < 0.02,
        "{first_in_group:?}"
    );
    assert!(share("zero.") < 0.03, "{first_in_group:?}");
}

#[test]
fn all_zero_weights_keep_every_record() {
    let records = vec![record(0, 0, "x."), record(0, 0, "y."), record(0, 0, "z.")];
    let ordered = order_srv(records, &mut seeded(7));
    let mut targets: Vec<String> = ordered.into_iter().map(|r| r.target).collect();
    targets.sort();
    assert_eq!(targets, ["x.", "y.", "z."]);
}
