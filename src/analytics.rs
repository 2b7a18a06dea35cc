//! The program's numbers in ClickHouse (README: "Analytics"): the SQL that
//! makes the click and attribution tables for a config (`refedge clickhouse
//! schema`). Two queue tables take the events as they are (JSON Lines):
//! from the topics through ClickHouse's Kafka engine, or, with `--files`,
//! from a spool directory and a `refedge match --spool` output; materialized
//! views turn them into `refedge_clicks` and `refedge_attributions`,
//! deduplicated by `click_id` and `conversion_id` (at least once in, exactly
//! once counted). `config/clickhouse/funnel.sql` reads those two tables.
//!
//! Each table's columns are declared once below: the name in the event,
//! its type in the queue (what JSON gives) and in the table, and how the
//! view converts one into the other.

use std::fmt::Write;
use std::path::Path;

use crate::config::KafkaConfig;

/// A column: its name in the event, its type in the queue table and in the
/// deduplicated table, and the view's expression (the queue's column when
/// `None`).
struct Column {
    name: &'static str,
    queue: &'static str,
    table: &'static str,
    from: Option<&'static str>,
}

const fn same(name: &'static str, ty: &'static str) -> Column {
    Column {
        name,
        queue: ty,
        table: ty,
        from: None,
    }
}

const fn time(name: &'static str) -> Column {
    Column {
        name,
        queue: "String",
        table: "DateTime64(3, 'UTC')",
        from: Some("parseDateTime64BestEffort({}, 3, 'UTC')"),
    }
}

const fn optional_time(name: &'static str) -> Column {
    Column {
        name,
        queue: "Nullable(String)",
        table: "Nullable(DateTime64(3, 'UTC'))",
        from: Some("parseDateTime64BestEffortOrNull({}, 3, 'UTC')"),
    }
}

const TEXT: &str = "String";
const MAYBE: &str = "Nullable(String)";
const FEW: &str = "LowCardinality(String)";
const MAYBE_FEW: &str = "LowCardinality(Nullable(String))";
const FLAG: &str = "Bool";
const FLAGS: &str = "Array(String)";
const INDEX: &str = "Nullable(UInt8)";

/// The click event's fields (`events::event::ClickEvent`).
const CLICKS: &[Column] = &[
    same("click_id", TEXT),
    time("occurred_at"),
    same("outcome", FEW),
    same("code", TEXT),
    same("host", FEW),
    same("advocate_id", MAYBE),
    same("campaign_id", MAYBE_FEW),
    same("program_id", MAYBE_FEW),
    same("target", MAYBE),
    same("status", "UInt16"),
    same("ip", MAYBE),
    same("user_agent", MAYBE),
    same("referer", MAYBE),
    same("country", MAYBE_FEW),
    same("region", MAYBE_FEW),
    same("city", MAYBE),
    same("asn", "Nullable(UInt32)"),
    same("bot", FLAG),
    same("bot_reason", MAYBE_FEW),
    same("attributed", FLAG),
    same("prior_click_id", MAYBE),
    same("gpc", FLAG),
    same("node", FEW),
    same("device", MAYBE_FEW),
    same("os", MAYBE_FEW),
    same("browser", MAYBE_FEW),
    same("repeat", FLAG),
    same("channel", FEW),
    same("channel_source", FEW),
    same("risk", FLAGS),
    same("rule", INDEX),
    same("variant", INDEX),
];

/// The attribution's fields (`matcher::join::Attribution`, with its
/// conversion's).
const ATTRIBUTIONS: &[Column] = &[
    same("conversion_id", TEXT),
    same("event_id", TEXT),
    same("name", FEW),
    same("click_id", MAYBE),
    optional_time("clicked_at"),
    same("within_window", FLAG),
    same("customer_id", MAYBE),
    same("reverses", MAYBE),
    time("occurred_at"),
    time("received_at"),
    same("value_minor", "Nullable(Int64)"),
    same("currency", MAYBE_FEW),
    same("source", FEW),
    same("referral_code", MAYBE),
    same("referral_host", MAYBE),
    same("customer_domain", MAYBE),
    same("node", FEW),
    same("matched", FLAG),
    same("reason", MAYBE_FEW),
    same("advocate_id", MAYBE),
    same("campaign_id", MAYBE_FEW),
    same("program_id", MAYBE_FEW),
    same("code", MAYBE),
    same("host", MAYBE_FEW),
    same("channel", MAYBE_FEW),
    same("variant", INDEX),
    same("click_to_conversion_secs", "Nullable(Float64)"),
    time("matched_at"),
    same("via", MAYBE_FEW),
    same("risk", FLAGS),
    same("held", FLAG),
    same("reversal", FLAG),
    same("reverses_conversion_id", MAYBE),
];

/// One stream of events: its queue, its table, the key it is deduplicated
/// by, which spool lines are its own.
struct Stream {
    what: &'static str,
    queue: &'static str,
    table: &'static str,
    key: &'static str,
    columns: &'static [Column],
    /// The spool holds clicks and conversions: a click line says so.
    only_type: Option<&'static str>,
}

const STREAMS: [Stream; 2] = [
    Stream {
        what: "clicks",
        queue: "refedge_clicks_queue",
        table: "refedge_clicks",
        key: "click_id",
        columns: CLICKS,
        only_type: Some("click"),
    },
    Stream {
        what: "attributions",
        queue: "refedge_attributions_queue",
        table: "refedge_attributions",
        key: "conversion_id",
        columns: ATTRIBUTIONS,
        only_type: None,
    },
];

/// Where the queue tables' rows come from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The clicks and attributions topics of `kafka`.
    Kafka(&'a KafkaConfig),
    /// A spool directory and an attributions file (`refedge match --spool`).
    Files {
        spool: &'a Path,
        attributions: &'a Path,
    },
}

/// A SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The Kafka table settings a librdkafka property has, if it has one.
fn table_setting(property: &str) -> Option<&'static str> {
    Some(match property {
        "security.protocol" => "kafka_security_protocol",
        "sasl.mechanism" | "sasl.mechanisms" => "kafka_sasl_mechanism",
        "sasl.username" => "kafka_sasl_username",
        "sasl.password" => "kafka_sasl_password",
        _ => return None,
    })
}

/// The SQL that makes every table and view for `source`, statements
/// separated by `;`.
pub fn schema(source: Source<'_>) -> String {
    let mut sql = String::new();
    let _ = writeln!(
        sql,
        "-- refedge analytics: clicks and attributions in ClickHouse (README: \"Analytics\").\n\
         -- Written for ClickHouse 23.3 or later (the Kafka engine's kafka_security_protocol and\n\
         -- kafka_sasl_* settings), tested on 26.9. Only the two queue tables' ENGINE clauses\n\
         -- depend on where rows come from."
    );
    if let Source::Kafka(kafka) = source {
        let rest: Vec<(&String, &String)> = kafka
            .properties
            .iter()
            .filter(|(k, _)| table_setting(k).is_none())
            .collect();
        if !rest.is_empty() {
            let _ = writeln!(
                sql,
                "-- These librdkafka properties have no table setting: put them in the server's\n\
                 -- config.xml, under <kafka>, with underscores for dots:"
            );
            for (k, v) in rest {
                let tag = k.replace('.', "_");
                let _ = writeln!(sql, "--   <{tag}>{v}</{tag}>");
            }
        }
    }
    for stream in &STREAMS {
        queue_table(&mut sql, stream, source);
        table(&mut sql, stream);
        view(&mut sql, stream);
    }
    if let Source::Files {
        spool,
        attributions,
    } = source
    {
        for stream in &STREAMS {
            let path = match stream.only_type {
                Some(_) => format!("{}/*.jsonl", spool.display()),
                None => attributions.display().to_string(),
            };
            load_file(&mut sql, stream, &path);
        }
    }
    sql
}

fn column_list(columns: &[Column], ty: impl Fn(&Column) -> &str, with_type: bool) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        let sep = if i == 0 { "" } else { ",\n" };
        let _ = write!(out, "{sep}    `{}` {}", c.name, ty(c));
    }
    if with_type {
        out.insert_str(0, "    `type` LowCardinality(String),\n");
    }
    out
}

fn queue_table(sql: &mut String, stream: &Stream, source: Source<'_>) {
    let _ = writeln!(
        sql,
        "\n-- The {} as they come (JSONEachRow).\nCREATE TABLE IF NOT EXISTS {}\n(\n{}\n)",
        stream.what,
        stream.queue,
        column_list(stream.columns, |c| c.queue, stream.only_type.is_some()),
    );
    match source {
        Source::Files { .. } => sql.push_str("ENGINE = Null;\n"),
        Source::Kafka(kafka) => {
            let topic = match stream.only_type {
                Some(_) => &kafka.clicks_topic,
                None => &kafka.attributions_topic,
            };
            let mut settings = vec![
                ("kafka_broker_list", literal(&kafka.brokers)),
                ("kafka_topic_list", literal(topic)),
                (
                    "kafka_group_name",
                    literal(&format!("refedge-clickhouse-{}", stream.what)),
                ),
                ("kafka_format", literal("JSONEachRow")),
                ("kafka_num_consumers", "1".into()),
                ("input_format_skip_unknown_fields", "1".into()),
            ];
            for (k, v) in &kafka.properties {
                if let Some(setting) = table_setting(k) {
                    settings.push((setting, literal(v)));
                }
            }
            let settings: Vec<String> = settings
                .iter()
                .map(|(k, v)| format!("    {k} = {v}"))
                .collect();
            let _ = writeln!(sql, "ENGINE = Kafka\nSETTINGS\n{};", settings.join(",\n"));
        }
    }
}

fn table(sql: &mut String, stream: &Stream) {
    let _ = writeln!(
        sql,
        "\n-- Each {key} once (ReplacingMergeTree, read with FINAL).\n\
         CREATE TABLE IF NOT EXISTS {table}\n(\n{columns}\n)\n\
         ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMM(occurred_at)\nORDER BY {key};",
        key = stream.key,
        table = stream.table,
        columns = column_list(stream.columns, |c| c.table, false),
    );
}

fn view(sql: &mut String, stream: &Stream) {
    let select: Vec<String> = stream
        .columns
        .iter()
        .map(|c| match c.from {
            Some(expr) => format!(
                "    {} AS `{}`",
                expr.replace("{}", &format!("`{}`", c.name)),
                c.name
            ),
            None => format!("    `{}`", c.name),
        })
        .collect();
    let filter = stream
        .only_type
        .map(|t| format!("\nWHERE `type` = {}", literal(t)))
        .unwrap_or_default();
    let _ = writeln!(
        sql,
        "\nCREATE MATERIALIZED VIEW IF NOT EXISTS {table}_mv TO {table} AS\nSELECT\n{select}\nFROM {queue}{filter};",
        table = stream.table,
        queue = stream.queue,
        select = select.join(",\n"),
    );
}

fn load_file(sql: &mut String, stream: &Stream, path: &str) {
    let names: Vec<String> = stream
        .columns
        .iter()
        .map(|c| format!("`{}`", c.name))
        .chain(stream.only_type.map(|_| "`type`".to_owned()))
        .collect();
    let structure: Vec<String> = stream
        .columns
        .iter()
        .map(|c| format!("`{}` {}", c.name, c.queue))
        .chain(stream.only_type.map(|_| "`type` String".to_owned()))
        .collect();
    let _ = writeln!(
        sql,
        "\nINSERT INTO {queue} ({names})\nSELECT {names}\nFROM file({path}, 'JSONEachRow', {structure})\nSETTINGS input_format_skip_unknown_fields = 1;",
        queue = stream.queue,
        names = names.join(", "),
        path = literal(path),
        structure = literal(&structure.join(", ")),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field of the click and attribution schemas has a column, and
    /// every column is a field.
    #[test]
    fn the_columns_are_the_events_fields() {
        for (columns, schema) in [
            (CLICKS, include_str!("events/click-event.schema.json")),
            (ATTRIBUTIONS, include_str!("events/attribution.schema.json")),
        ] {
            let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
            let fields: Vec<&str> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            for c in columns {
                assert!(
                    fields.contains(&c.name),
                    "{} is no field of the event",
                    c.name
                );
            }
            // Left out on purpose: the version and type, and what analytics
            // does not group by (free-form JSON, the browser's origin).
            let left_out = [
                "schema_version",
                "type",
                "properties",
                "origin",
                "user_agent",
                "ip",
            ];
            for f in fields {
                assert!(
                    columns.iter().any(|c| c.name == f) || left_out.contains(&f),
                    "the event's {f} has no column"
                );
            }
        }
    }

    #[test]
    fn kafka_settings_come_from_the_config_and_the_rest_is_said() {
        let mut kafka = KafkaConfig {
            brokers: "k1:9092,k2:9092".into(),
            ..KafkaConfig::default()
        };
        kafka
            .properties
            .insert("security.protocol".into(), "SASL_SSL".into());
        kafka
            .properties
            .insert("sasl.mechanisms".into(), "SCRAM-SHA-512".into());
        kafka
            .properties
            .insert("sasl.username".into(), "click'house".into());
        kafka
            .properties
            .insert("ssl.ca.location".into(), "/etc/ca.pem".into());
        let sql = schema(Source::Kafka(&kafka));
        assert!(
            sql.contains("kafka_broker_list = 'k1:9092,k2:9092'"),
            "{sql}"
        );
        assert!(sql.contains("kafka_topic_list = 'refedge.clicks'"));
        assert!(sql.contains("kafka_topic_list = 'refedge.attributions'"));
        assert!(sql.contains("kafka_security_protocol = 'SASL_SSL'"));
        assert!(sql.contains("kafka_sasl_mechanism = 'SCRAM-SHA-512'"));
        assert!(sql.contains("kafka_sasl_username = 'click\\'house'"));
        assert!(sql.contains("--   <ssl_ca_location>/etc/ca.pem</ssl_ca_location>"));
        assert_eq!(sql.matches("ENGINE = Kafka").count(), 2);
        // Statements are split at `;`: no comment holds one.
        assert!(
            sql.lines()
                .filter(|l| l.starts_with("--"))
                .all(|l| !l.contains(';'))
        );
        let files = schema(Source::Files {
            spool: Path::new("/data/spool"),
            attributions: Path::new("/data/attributions.jsonl"),
        });
        assert_eq!(files.matches("ENGINE = Null").count(), 2);
        assert!(files.contains("FROM file('/data/spool/*.jsonl', 'JSONEachRow'"));
        assert!(!files.contains("ENGINE = Kafka"));
    }
}
