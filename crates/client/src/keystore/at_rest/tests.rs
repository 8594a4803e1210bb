use super::*;

fn key() -> FileKey {
    let header = Header::parse(&header_json()).unwrap();
    FileKey::unlock(&header, &Passphrase::new("correct horse"))
        .unwrap()
        .unwrap()
}

fn header_json() -> Vec<u8> {
    FileKey::create(&Passphrase::new("correct horse"))
        .unwrap()
        .1
}

#[test]
fn a_header_round_trips_and_only_its_passphrase_unlocks_it() {
    let json = header_json();
    let header = Header::parse(&json).unwrap();
    assert_eq!(header.params, (M_COST_KIB, T_COST, P_COST));
    assert!(
        FileKey::unlock(&header, &Passphrase::new("correct horse"))
            .unwrap()
            .is_some()
    );
    assert!(
        FileKey::unlock(&header, &Passphrase::new("correct hors"))
            .unwrap()
            .is_none()
    );
    assert!(
        FileKey::unlock(&header, &Passphrase::new(""))
            .unwrap()
            .is_none()
    );
}

/// Truncated, garbage, wrong-version and out-of-bounds headers are each a clear error.
#[test]
fn a_bad_header_is_an_error_not_a_panic() {
    let json = header_json();
    let text = String::from_utf8(json.clone()).unwrap();
    for n in 0..json.len() {
        assert!(Header::parse(&json[..n]).is_err(), "truncated at {n}");
    }
    let bad = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        Header::parse(text.replacen(from, to, 1).as_bytes()).unwrap_err()
    };
    assert!(bad("\"version\": 1", "\"version\": 2").contains("format version 2"));
    assert!(bad("\"argon2id\"", "\"scrypt\"").contains("KDF"));
    assert!(bad("\"m_cost_kib\": 19456", "\"m_cost_kib\": 4194304").contains("beyond"));
    assert!(bad("\"m_cost_kib\": 19456", "\"m_cost_kib\": 1").contains("m=1 KiB"));
    assert!(bad("\"t_cost\": 2", "\"t_cost\": 0").contains("t=0"));
    assert!(bad("\"salt\": \"", "\"salt\": \"00").contains("salt"));
    assert!(bad("\"key\": \"", "\"key\": \"00").contains("sealed 32-byte key"));
    assert!(bad("\"p_cost\": 1", "\"p_cost\": 1, \"extra\": 0").contains("unknown field"));
    assert!(Header::parse(b"\x00\xff garbage").is_err());
    assert!(Header::parse(&vec![b' '; MAX_HEADER + 1]).is_err());
}

#[test]
fn a_sealed_file_opens_only_under_its_own_path_and_key() {
    let key = key();
    let sealed = key.seal_file("identity.key", b"seed bytes").unwrap();
    assert_eq!(
        key.open_file("identity.key", &sealed).unwrap().as_slice(),
        b"seed bytes"
    );
    assert!(!sealed.windows(10).any(|w| w == b"seed bytes"));
    assert_eq!(
        key.open_file("device.key", &sealed).unwrap_err(),
        OpenError::Inauthentic
    );
    let other = FileKey::create(&Passphrase::new("correct horse"))
        .unwrap()
        .2;
    assert_eq!(
        other.open_file("identity.key", &sealed).unwrap_err(),
        OpenError::Inauthentic
    );
    let mut flipped = sealed.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(
        key.open_file("identity.key", &flipped).unwrap_err(),
        OpenError::Inauthentic
    );
    let mut version = sealed.clone();
    version[4] = 2;
    assert!(matches!(
        key.open_file("identity.key", &version),
        Err(OpenError::Version { got: 2, .. })
    ));
    for n in 0..sealed.len() {
        assert!(key.open_file("identity.key", &sealed[..n]).is_err());
    }
    assert_eq!(
        key.open_file("identity.key", &[7u8; 32]).unwrap_err(),
        OpenError::NotSealed
    );
    // A fresh nonce per write: the same plaintext never seals to the same bytes.
    assert_ne!(
        sealed,
        key.seal_file("identity.key", b"seed bytes").unwrap()
    );
}

/// A new header for another passphrase keeps the same file key: what the old one sealed, the
/// new one opens; the old passphrase opens the new header no more.
#[test]
fn a_new_header_keeps_the_file_key_under_the_new_passphrase() {
    let (_, _, key) = FileKey::create(&Passphrase::new("old")).unwrap();
    let sealed = key.seal_file("token", b"t").unwrap();
    let (header, json) = key.header(&Passphrase::new("new")).unwrap();
    assert_eq!(Header::parse(&json).unwrap(), header);
    assert!(
        FileKey::unlock(&header, &Passphrase::new("old"))
            .unwrap()
            .is_none()
    );
    let reopened = FileKey::unlock(&header, &Passphrase::new("new"))
        .unwrap()
        .unwrap();
    assert_eq!(
        reopened.open_file("token", &sealed).unwrap().as_slice(),
        b"t"
    );
}

#[test]
fn a_passphrase_is_never_printed() {
    assert_eq!(
        format!("{:?}", Passphrase::new("hunter2")),
        "Passphrase(***)"
    );
}

/// What one unlock costs (the argon2id derivation and opening the sealed key) with the default
/// parameters: `cargo test -p rendezvous-client [--release] -- --ignored --nocapture unlock_time`.
#[test]
#[ignore]
fn unlock_time() {
    let header = Header::parse(&header_json()).unwrap();
    let passphrase = Passphrase::new("correct horse");
    let start = std::time::Instant::now();
    for _ in 0..5 {
        assert!(FileKey::unlock(&header, &passphrase).unwrap().is_some());
    }
    println!("unlock: {:?} each", start.elapsed() / 5);
}
