//! Offline checks of the account helpers.

use super::*;

#[test]
fn server_key_formats() {
    let key = rendezvous_protocol::crypto::ServerKey::generate();
    let raw = key.public().as_bytes().to_vec();
    for text in [
        rendezvous_protocol::crypto::sign::hex_string(&raw),
        base64::engine::general_purpose::STANDARD.encode(&raw),
        format!(
            "ed25519:{}",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        ),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw),
    ] {
        let status = ServerStatus {
            server_name: "a.example".into(),
            version: String::new(),
            server_key: text.clone(),
        };
        assert_eq!(status.key().unwrap(), *key.public(), "{text}");
    }
    let bad = ServerStatus {
        server_name: "a.example".into(),
        version: String::new(),
        server_key: "nope!".into(),
    };
    assert!(bad.key().is_err());
}

#[test]
fn registrations_are_checked() {
    let user: UserId = "@alice:a.example".parse().unwrap();
    let ik = IdentityKey::generate();
    let reg = Signed::sign(Registration::new(user.clone(), ik.public().clone()), &ik);
    assert_eq!(
        verify_registration(reg.signed_bytes().clone(), &user).unwrap(),
        *ik.public()
    );
    let bob: UserId = "@bob:a.example".parse().unwrap();
    assert!(verify_registration(reg.signed_bytes().clone(), &bob).is_err());
    let mut forged = reg.signed_bytes().clone();
    forged.1.0[0] ^= 1;
    assert!(verify_registration(forged, &user).is_err());
    let server: ServerName = "b.example".parse().unwrap();
    assert!(check_home(&user, &server).is_err());
}
