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

/// A `device added` notice whose endorsement does not verify (a forging server) is reported
/// with the reason, never dropped; a good one is reported verified.
#[test]
fn a_forged_device_notice_is_reported_not_dropped() {
    use rendezvous_protocol::api::DeviceAddedItem;
    use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement};
    use rendezvous_protocol::devices::DeviceDirectory;

    let user: UserId = "@alice:a.example".parse().unwrap();
    let ik = IdentityKey::generate();
    let (a, n, server) = (
        DeviceKey::generate(),
        DeviceKey::generate(),
        DeviceKey::generate(),
    );
    let cert =
        |dk: &DeviceKey| Signed::sign(DeviceCert::new(user.clone(), dk.public().clone(), 1), &ik);
    let mut directory = DeviceDirectory::new(user.clone(), ik.public().clone());
    directory.add(cert(&a).unverified()).unwrap();
    directory.add(cert(&n).unverified()).unwrap();
    let notice = |signer: &DeviceKey| {
        let e = DeviceEndorsement::new(user.clone(), n.public().clone(), a.public().clone(), 2);
        DeviceAddedItem {
            device_cert: cert(&n).signed_bytes().clone(),
            endorsement: Signed::sign(e, signer).signed_bytes().clone(),
        }
    };
    let forged = inbox::check_device_added(&directory, notice(&server));
    assert_eq!(forged.device, Some(n.public().key_id().to_hex()));
    assert_eq!(forged.endorser, Some(a.public().key_id().to_hex()));
    let problem = forged.problem.unwrap();
    assert!(problem.contains("endorsement not signed"), "{problem}");

    let good = inbox::check_device_added(&directory, notice(&a));
    assert_eq!(good.problem, None);
    // A notice whose parts do not decode is reported too.
    let garbage = DeviceAddedItem {
        device_cert: rendezvous_protocol::wire::SignedBytes(vec![1, 2], notice(&a).endorsement.1),
        endorsement: notice(&a).endorsement,
    };
    let bad = inbox::check_device_added(&directory, garbage);
    assert!(bad.problem.is_some() && bad.device.is_none());
}
