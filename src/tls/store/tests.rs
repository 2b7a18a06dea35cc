//! The certificate store against real certificates made by rcgen.

use super::*;

fn pair(dir: &Path, file: &str, names: &[&str]) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
}

fn served_by(set: &CertSet, sni: Option<&str>) -> Option<String> {
    let key = set.lookup(sni)?;
    set.pairs
        .iter()
        .find(|(_, p)| Arc::ptr_eq(&p.key, key))
        .map(|(n, _)| n.clone())
}

#[test]
fn sni_picks_exact_then_one_label_wildcard_then_default() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path(), "adp", &["go.adp.example"]);
    pair(
        dir.path(),
        "directv",
        &["*.directv.example", "directv.example"],
    );
    let (store, report) = CertStore::open(dir.path(), Some("adp"), false).unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let set = store.current();
    assert_eq!(
        served_by(&set, Some("go.adp.example")).as_deref(),
        Some("adp")
    );
    assert_eq!(
        served_by(&set, Some("GO.ADP.example.")).as_deref(),
        Some("adp")
    );
    assert_eq!(
        served_by(&set, Some("refer.directv.example")).as_deref(),
        Some("directv")
    );
    assert_eq!(
        served_by(&set, Some("directv.example")).as_deref(),
        Some("directv")
    );
    // A wildcard covers one label only; the rest falls to the default.
    assert_eq!(
        served_by(&set, Some("a.b.directv.example")).as_deref(),
        Some("adp")
    );
    assert_eq!(served_by(&set, None).as_deref(), Some("adp"));

    let (store, _) = CertStore::open(dir.path(), None, false).unwrap();
    assert_eq!(served_by(&store.current(), Some("unknown.example")), None);
    assert_eq!(served_by(&store.current(), None), None);
}

#[test]
fn bad_pairs_are_named_and_left_out() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path(), "good", &["go.good.example"]);
    pair(dir.path(), "other", &["go.other.example"]);
    // other.key now holds a different key than other.crt.
    let stray = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.key"), stray.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("lonely.crt"), "not pem").unwrap();
    let (store, report) = CertStore::open(dir.path(), None, false).unwrap();
    assert_eq!(report.served, 1);
    let messages: Vec<String> = report.errors.iter().map(|e| e.to_string()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("other.key") && m.contains("does not match")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("lonely.crt") && m.contains("lonely.key is missing")),
        "{messages:?}"
    );
    assert_eq!(store.current().served().len(), 1);
}

#[test]
fn nothing_usable_or_a_missing_default_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = CertStore::open(dir.path(), None, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no usable certificate pair"), "{err}");
    pair(dir.path(), "a", &["a.example"]);
    let err = CertStore::open(dir.path(), Some("b"), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls.default_cert") && err.contains("\"b\""),
        "{err}"
    );
}

#[test]
fn an_expired_certificate_is_refused_with_its_date() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path(), "fresh", &["fresh.example"]);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["old.example".into()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("old.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("old.key"), key.serialize_pem()).unwrap();
    let (_, report) = CertStore::open(dir.path(), None, false).unwrap();
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0].message.contains("expired at 2021-01-01"),
        "{}",
        report.errors[0]
    );
}

#[test]
fn reload_keeps_the_previous_certificate_of_a_broken_pair() {
    let dir = tempfile::tempdir().unwrap();
    pair(dir.path(), "brand", &["go.brand.example"]);
    let (store, _) = CertStore::open(dir.path(), None, false).unwrap();
    let before = Arc::clone(store.current().lookup(Some("go.brand.example")).unwrap());
    assert!(!store.changed());
    std::fs::write(dir.path().join("brand.crt"), "garbage").unwrap();
    assert!(store.changed());
    let report = store.reload().unwrap();
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0]
            .message
            .contains("still serving the previous certificate")
    );
    let kept = Arc::clone(store.current().lookup(Some("go.brand.example")).unwrap());
    assert!(Arc::ptr_eq(&before, &kept));
    // Fixed files are picked up.
    pair(dir.path(), "brand", &["go.brand.example"]);
    let report = store.reload().unwrap();
    assert_eq!(report.loaded, vec!["brand".to_string()]);
    let after = Arc::clone(store.current().lookup(Some("go.brand.example")).unwrap());
    assert!(!Arc::ptr_eq(&before, &after));
}

#[test]
fn a_pair_is_written_whole_with_a_private_key_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "go.brand.example", "KEY", "CHAIN").unwrap();
    let key = dir.path().join("go.brand.example.key");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "KEY");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("go.brand.example.crt")).unwrap(),
        "CHAIN"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "no temporary file is left behind");
}
