use super::*;

const AASA: &str = r#"{ "applinks": {"details": [ {"appIDs": ["ABCDE12345.com.brand.app"], "components": [{"/": "/*"}]} ]} }"#;

#[test]
fn documents_are_kept_byte_for_byte() {
    let line = format!(
        r#"{{"host":"Go.Brand.Example","apple_app_site_association":{AASA},"assetlinks":[ ],"fallback_url":"https://brand.example/oops","acme":false}}"#
    );
    let domain = Domain::from_json(&line).unwrap();
    assert_eq!(domain.host(), "go.brand.example");
    assert_eq!(domain.apple_app_site_association.as_deref(), Some(AASA));
    assert_eq!(domain.assetlinks.as_deref(), Some("[ ]"));
    assert_eq!(domain.acme, Some(false));
    // Through its JSON (the topic, the admin API) and back: the same bytes.
    let again = Domain::from_json(&domain.to_json()).unwrap();
    assert_eq!(again, domain);
}

#[test]
fn every_wrong_field_is_named() {
    let errors = |line: &str| -> Vec<String> {
        Domain::from_json(line)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(
        errors(
            r#"{"host":"go.brand.example","apple_app_site_association":[1],"assetlinks":{},"fallback_url":"ftp://x"}"#
        ),
        [
            "fallback_url: must be an http or https URL",
            "apple_app_site_association: must be a JSON object",
            "assetlinks: must be a JSON array",
        ]
    );
    assert_eq!(
        errors(r#"{"fallback_url":"https://a.example/"}"#),
        ["host: is required"]
    );
    assert_eq!(
        errors(r#"{"host":"not a host"}"#),
        ["host: must be a host name such as go.brand.com"]
    );
    assert_eq!(errors(r#"{"host":"a.example","cert":1}"#).len(), 1);
    assert_eq!(
        errors(r#"["a.example"]"#),
        ["invalid JSON: a domain is a JSON object"]
    );
    let big = format!(
        r#"{{"host":"a.example","assetlinks":["{}"]}}"#,
        "x".repeat(MAX_DOCUMENT_BYTES)
    );
    assert_eq!(
        errors(&big),
        [format!(
            "assetlinks: is {} bytes, at most 65536",
            MAX_DOCUMENT_BYTES + 4
        )]
    );
}

#[test]
fn the_file_replaces_its_own_domains_and_keeps_the_admin_apis() {
    let store = DomainStore::new();
    assert!(store.get("go.brand.example").is_none());
    store.upsert(Domain::from_json(r#"{"host":"admin.example"}"#).unwrap());
    store.replace_file(vec![
        Domain::from_json(r#"{"host":"go.brand.example","fallback_url":"https://brand.example/"}"#)
            .unwrap(),
    ]);
    let entry = store.get("GO.Brand.Example.").unwrap();
    assert_eq!(
        entry.fallback.as_ref().map(|v| v.to_str().unwrap()),
        Some("https://brand.example/")
    );
    store.replace_file(vec![]);
    assert!(store.get("go.brand.example").is_none());
    assert!(store.get("admin.example").is_some());
}

#[test]
fn topic_records_apply_to_the_store() {
    let store = DomainStore::new();
    assert_eq!(
        store.apply(
            "go.brand.example",
            Some(br#"{"host":"go.brand.example","assetlinks":[]}"#)
        ),
        Ok(())
    );
    assert!(store.get("go.brand.example").is_some());
    assert!(
        store
            .apply("other.example", Some(br#"{"host":"go.brand.example"}"#))
            .is_err()
    );
    assert!(store.apply("x.example", Some(b"{")).is_err());
    assert_eq!(store.apply("go.brand.example", None), Ok(()));
    assert!(store.get("go.brand.example").is_none());
}

#[test]
fn a_domains_file_reports_its_bad_lines_and_keeps_the_rest() {
    let dir = std::env::temp_dir().join(format!("refedge-domains-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("domains.jsonl");
    std::fs::write(&path, "{\"host\":\"a.example\"}\n\n{\"host\":\"b.example\",\"assetlinks\":{}}\n{\"host\":\"a.example\",\"acme\":true}\n").unwrap();
    let (domains, errors) = load_file(&path).unwrap();
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].acme, Some(true));
    assert_eq!(
        errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["line 3: assetlinks: must be a JSON array"]
    );
    let (none, no_errors) = load_file(&dir.join("missing.jsonl")).unwrap();
    assert!(none.is_empty() && no_errors.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
