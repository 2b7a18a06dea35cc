"""schemathesis hooks for .ci/checkers: the two rules of a link body that
JSON Schema cannot state, applied to generated bodies that are otherwise
schema-valid, so a body the description calls valid is valid:

- a split test's weights sum to 100 (`variants`);
- a rule's `before` is later than its `after`.

Bodies whose variants or instants break the schema themselves are left as
drawn, so negative tests keep their mistakes.
"""

import jsonschema_rs
import schemathesis

# The schema's own test of an instant (`format: date-time`), as schemathesis
# applies it: only two instants that pass it are put in order, so that a
# negative test's malformed instant reaches the API as drawn.
_INSTANT = jsonschema_rs.validator_for(
    {"type": "string", "format": "date-time"}, validate_formats=True
)


def _weights_to_100(variants):
    if not isinstance(variants, list) or not 2 <= len(variants) <= 4:
        return
    def whole(w):
        return type(w) in (int, float) and w == int(w) and 1 <= w <= 99

    if not all(isinstance(v, dict) and whole(v.get("weight")) for v in variants):
        return
    n = len(variants)
    even = [100 // n] * n
    even[-1] += 100 - sum(even)
    for v, w in zip(variants, even):
        v["weight"] = w


def _ordered_instants(rules):
    if not isinstance(rules, list):
        return
    for rule in rules:
        when = rule.get("when") if isinstance(rule, dict) else None
        if not isinstance(when, dict):
            continue
        after, before = when.get("after"), when.get("before")
        if _INSTANT.is_valid(after) and _INSTANT.is_valid(before):
            when["after"], when["before"] = "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"


@schemathesis.hook
def map_body(ctx, body):
    if isinstance(body, dict):
        _weights_to_100(body.get("variants"))
        _ordered_instants(body.get("rules"))
    return body
