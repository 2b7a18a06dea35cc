//! Secret hygiene: cookie keys, the admin token and Kafka SASL passwords
//! never appear in the logs (at debug level), in `/metrics`, in error
//! messages about them, or in the admin API's answers.

use crate::common::*;

const COOKIE_KEY: &str = "cookie-key-Zq8vW2xN4mP7rT1y";
const OLD_COOKIE_KEY: &str = "old-cookie-key-Hk3jL9sD5fG2";
const ADMIN_TOKEN: &str = "admin-token-Ye6uI8oP0aS4dF7g";
const SASL_PASSWORD: &str = "sasl-password-Xc2vB5nM8qW1eR4t";

fn assert_clean(what: &str, text: &str) {
    for secret in [COOKIE_KEY, OLD_COOKIE_KEY, ADMIN_TOKEN, SASL_PASSWORD] {
        assert!(!text.contains(secret), "{what} shows a secret: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_stay_out_of_logs_metrics_and_answers() {
    let fixture = Fixture::new(LINKS);
    let config = fixture.dir.path().join("refedge.toml");
    // A broker that is not there, reached with SASL: librdkafka logs its
    // connection errors, and none may carry the password.
    std::fs::write(
        &config,
        format!(
            "[kafka.properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n\"sasl.username\" = \"edge\"\n\"sasl.password\" = \"{SASL_PASSWORD}\"\n\"debug\" = \"conf,security,broker\"\n"
        ),
    )
    .expect("write config");
    let secrets = format!("{COOKIE_KEY},{OLD_COOKIE_KEY}");
    let env = fixture.env(&[
        ("REFEDGE_ATTRIBUTION_SECRET", secrets.as_str()),
        ("REFEDGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", "127.0.0.1:1"),
        ("REFEDGE_LOG_LEVEL", "debug"),
    ]);
    let edge = spawn_binary_with(&config, &env);
    let ua = (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0 Safari/537.36",
    );
    let first = get(edge.public, "/demo", &[ua]).await;
    let cookie = cookie_pair(first.header("set-cookie").expect("cookie"));
    let again = get(edge.public, "/demo", &[ua, ("cookie", cookie.as_str())]).await;
    assert_eq!(again.status, 302);
    let _ = get(
        edge.public,
        "/demo",
        &[ua, ("cookie", "rf_ref=1.forged.1.sig")],
    )
    .await;
    let (status, body) = admin_request(
        edge.admin,
        "GET",
        "/v1/links/demo",
        Some("wrong-token-0123456789"),
        "",
    )
    .await;
    assert_eq!(status, 401);
    assert_clean("a 401 answer", &body.to_string());
    let (status, body) =
        admin_request(edge.admin, "GET", "/v1/links/demo", Some(ADMIN_TOKEN), "").await;
    assert_eq!(status, 200);
    assert_clean("an admin answer", &body.to_string());
    let metrics = get(edge.admin, "/metrics", &[]).await;
    assert_clean("/metrics", &String::from_utf8_lossy(&metrics.body));
    // Let librdkafka try (and fail) to reach the broker a few times.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let log = edge.log.lock().expect("log").join("\n");
    assert!(
        log.contains("127.0.0.1:1/bootstrap") && log.contains("\"level\":\"DEBUG\""),
        "librdkafka's connection and debug logs are in: {log}"
    );
    assert_clean("the log", &log);
}

#[test]
fn errors_about_secrets_do_not_repeat_them() {
    let fixture = Fixture::new(LINKS);
    for (key, value) in [
        ("REFEDGE_ADMIN_TOKEN", "short-Qw3"),
        ("REFEDGE_ATTRIBUTION_SECRET", "tiny-Rt5"),
    ] {
        let out = run_binary(
            &["check", "--config", "/dev/null"],
            &fixture.env(&[(key, value)]),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{key}={value} accepted: {text}");
        assert!(
            text.contains(&key[8..].to_lowercase().replacen('_', ".", 1)),
            "{text}"
        );
        assert!(
            !text.contains(value),
            "the error repeats the secret: {text}"
        );
    }
}
