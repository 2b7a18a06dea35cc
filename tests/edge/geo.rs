//! GeoIP enrichment with small databases the test writes itself (nothing is
//! downloaded): fields in the event, errors at start, reload keeping the old
//! databases when a new file is bad.

use std::path::Path;

use crate::common::*;
use serde::Serialize;

#[derive(Serialize)]
struct Names {
    en: String,
}

#[derive(Serialize)]
struct Country {
    iso_code: String,
}

#[derive(Serialize)]
struct Subdivision {
    iso_code: String,
}

#[derive(Serialize)]
struct City {
    names: Names,
}

#[derive(Serialize)]
struct CityRecord {
    city: City,
    country: Country,
    subdivisions: Vec<Subdivision>,
}

#[derive(Serialize)]
struct AsnRecord {
    autonomous_system_number: u32,
    autonomous_system_organization: String,
}

/// A City database: 198.51.100.0/24 is `city`, US-CA; 2001:db8:1::/48 is
/// Berlin, DE-BE.
pub(crate) fn write_city_db(path: &Path, city: &str) {
    let mut w = mmdb_writer::Writer::new("GeoLite2-City");
    let record = CityRecord {
        city: City {
            names: Names {
                en: city.to_owned(),
            },
        },
        country: Country {
            iso_code: "US".into(),
        },
        subdivisions: vec![Subdivision {
            iso_code: "CA".into(),
        }],
    };
    w.insert("198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(), &record)
        .unwrap();
    let de = CityRecord {
        city: City {
            names: Names {
                en: "Berlin".into(),
            },
        },
        country: Country {
            iso_code: "DE".into(),
        },
        subdivisions: vec![Subdivision {
            iso_code: "BE".into(),
        }],
    };
    w.insert("2001:db8:1::/48".parse::<ipnet::IpNet>().unwrap(), &de)
        .unwrap();
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

fn write_asn_db(path: &Path) {
    let mut w = mmdb_writer::Writer::new("GeoLite2-ASN");
    let record = AsnRecord {
        autonomous_system_number: 64_500,
        autonomous_system_organization: "Example Net".into(),
    };
    w.insert("198.51.100.0/24".parse::<ipnet::IpNet>().unwrap(), &record)
        .unwrap();
    std::fs::write(path, w.to_bytes().unwrap()).unwrap();
}

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_country_region_city_and_asn() {
    let fixture = Fixture::new(LINKS);
    let city = fixture.dir.path().join("city.mmdb");
    let asn = fixture.dir.path().join("asn.mmdb");
    write_city_db(&city, "San Francisco");
    write_asn_db(&asn);
    let (city_s, asn_s) = (city.display().to_string(), asn.display().to_string());
    let edge = start(&fixture.config(&[
        ("REFEDGE_GEO_CITY_DB", &city_s),
        ("REFEDGE_GEO_ASN_DB", &asn_s),
        ("REFEDGE_SERVER_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("REFEDGE_PRIVACY_IP", "truncate"),
    ]))
    .await;
    get(
        edge.public,
        "/demo",
        &[UA, ("x-forwarded-for", "198.51.100.23")],
    )
    .await;
    get(
        edge.public,
        "/demo",
        &[UA, ("x-forwarded-for", "2001:db8:1::5")],
    )
    .await;
    get(
        edge.public,
        "/demo",
        &[UA, ("x-forwarded-for", "203.0.113.1")],
    )
    .await;
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_schema_valid(&events);
    let e = &events[0];
    assert_eq!(
        (
            e["country"].as_str(),
            e["region"].as_str(),
            e["city"].as_str()
        ),
        (Some("US"), Some("US-CA"), Some("San Francisco"))
    );
    assert_eq!(e["asn"], 64_500);
    assert_eq!(
        e["ip"], "198.51.100.0",
        "geo comes from the full address, the event keeps the truncated one"
    );
    assert_eq!(events[1]["country"], "DE");
    assert_eq!(events[1]["region"], "DE-BE");
    assert!(events[1]["asn"].is_null());
    assert!(
        events[2]["country"].is_null() && events[2]["asn"].is_null(),
        "unknown networks stay null"
    );
}

#[test]
fn a_missing_or_corrupt_database_is_refused_at_start_naming_the_key() {
    let fixture = Fixture::new(LINKS);
    let run = |key: &str, value: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_refedge"))
            .args(["serve", "--config", "/dev/null"])
            .envs(fixture.env(&[(key, value)]))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run("REFEDGE_GEO_CITY_DB", "/no/such.mmdb");
    assert!(
        stderr.contains("geo.city_db: cannot open /no/such.mmdb"),
        "{stderr}"
    );
    let corrupt = fixture.dir.path().join("corrupt.mmdb");
    std::fs::write(&corrupt, b"this is not a MaxMind database").unwrap();
    let stderr = run("REFEDGE_GEO_CITY_DB", &corrupt.display().to_string());
    assert!(stderr.contains("geo.city_db: cannot open"), "{stderr}");
    let asn = fixture.dir.path().join("asn.mmdb");
    write_asn_db(&asn);
    let stderr = run("REFEDGE_GEO_CITY_DB", &asn.display().to_string());
    assert!(
        stderr.contains("is a \"GeoLite2-ASN\" database, expected a City or Country database"),
        "{stderr}"
    );
}

#[test]
fn reload_swaps_databases_and_keeps_the_old_one_on_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.mmdb");
    write_city_db(&path, "San Francisco");
    let geo = refedge::geo::Geo::open(Some(path.clone()), None).unwrap();
    let ip = "198.51.100.9".parse().unwrap();
    assert_eq!(
        geo.current().lookup(ip).city.as_deref(),
        Some("San Francisco")
    );

    // A new release is renamed over the old file, as geoipupdate does.
    let next = dir.path().join("city.mmdb.new");
    write_city_db(&next, "Oakland");
    std::fs::rename(&next, &path).unwrap();
    geo.reload().unwrap();
    assert_eq!(geo.current().lookup(ip).city.as_deref(), Some("Oakland"));

    std::fs::write(&next, b"garbage").unwrap();
    std::fs::rename(&next, &path).unwrap();
    let err = geo.reload().unwrap_err().to_string();
    assert!(err.starts_with("geo.city_db: cannot open"), "{err}");
    assert_eq!(
        geo.current().lookup(ip).city.as_deref(),
        Some("Oakland"),
        "the old database stays"
    );
}
