"""Runs `refedge clickhouse schema` and config/clickhouse/funnel.sql on a real
ClickHouse engine, in process (chdb), and prints the funnel's rows as JSON
Lines. Used by the analytics tests (tests/edge/analytics.rs,
tests/kafka/analytics.rs).

    python3 tests/clickhouse/funnel.py SCHEMA.sql FROM TO [CLICKS.jsonl ATTRIBUTIONS.jsonl]

SCHEMA.sql is the schema as printed. With the two JSON Lines files (what
the test consumed from the clicks and attributions topics), the queue
tables' Kafka engine is swapped for Null (chdb's Kafka engine does not start
in process) and the records are inserted into them; everything after the
queue tables is the schema as printed. FROM and TO are UTC times.
"""

import re
import sys

from chdb import session

schema_path, start, end = sys.argv[1:4]
records = sys.argv[4:6]
sql = open(schema_path).read()
if records:
    sql, swapped = re.subn(r"ENGINE = Kafka\s+SETTINGS[^;]*;", "ENGINE = Null;", sql)
    assert swapped == 2, f"expected two Kafka queue tables, swapped {swapped}"
db = session.Session()
for statement in sql.split(";"):
    if statement.strip() and not all(l.startswith("--") or not l.strip() for l in statement.splitlines()):
        db.query(statement)
for queue, path in zip(["refedge_clicks_queue", "refedge_attributions_queue"], records):
    data = open(path).read()
    if data.strip():
        db.query(f"INSERT INTO {queue} FORMAT JSONEachRow\n{data}")
db.query("SET output_format_json_quote_64bit_integers = 0")
db.query(f"SET param_from = '{start}'")
db.query(f"SET param_to = '{end}'")
funnel = open("config/clickhouse/funnel.sql").read()
print(db.query(funnel, "JSONEachRow"), end="")
