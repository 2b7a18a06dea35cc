-- The referral program's funnel over [from, to), UTC: per program,
-- campaign, advocate, channel and variant (README: "Analytics").
--   clickhouse client --param_from='2026-12-01 00:00:00' --param_to='2027-01-01 00:00:00' \
--     --queries-file config/clickhouse/funnel.sql
-- A click counts in the range of its time, a conversion or reversal in the
-- range of its own `occurred_at`; dead ends never appear.
-- Reads refedge_clicks and refedge_attributions (`refedge clickhouse schema`),
-- each event once (FINAL: a click or attribution delivered twice counts once).
--   human_clicks  redirected clicks of people (bots, preview fetchers and dead ends never)
--   bot_clicks    redirects and preview pages served to bots
--   visitors      distinct people: a click's prior_click_id (from the cookie), else its own id
--   conversions   conversions in the range credited here: matched, not held, not reversals
--   held          matched conversions held for review (a risk flag in match.hold_risks)
--   value_minor   the conversions' value, minus the reversals (refunds) in the range of
--                 conversions that counted; NULL when the group mixes currencies
--   currency      the conversions' currency (NULL: none, or several)
-- Credit goes to the attribution's advocate, campaign, program, channel and
-- variant (a conversion credited through a referral code has no channel).
WITH
    clicks AS
    (
        SELECT
            program_id, campaign_id, advocate_id,
            CAST(channel AS Nullable(String)) AS channel, variant,
            countIf(NOT bot AND outcome = 'redirected') AS n_human,
            countIf(bot AND outcome IN ('redirected', 'preview')) AS n_bot,
            uniqExactIf(ifNull(prior_click_id, click_id), NOT bot AND outcome = 'redirected') AS n_visitors
        FROM refedge_clicks FINAL
        WHERE occurred_at >= {from:DateTime64(3)} AND occurred_at < {to:DateTime64(3)}
            AND outcome IN ('redirected', 'preview')
        GROUP BY program_id, campaign_id, advocate_id, channel, variant
    ),
    counted AS
    (
        SELECT conversion_id
        FROM refedge_attributions FINAL
        WHERE matched AND NOT held AND NOT reversal
    ),
    credited AS
    (
        SELECT
            program_id, campaign_id, advocate_id,
            CAST(channel AS Nullable(String)) AS channel, variant,
            countIf(NOT reversal AND NOT held) AS n_conversions,
            countIf(NOT reversal AND held) AS n_held,
            ifNull(sumIf(value_minor, NOT reversal AND NOT held), 0)
                - ifNull(sumIf(value_minor, reversal AND reverses_conversion_id IN (SELECT conversion_id FROM counted)), 0) AS n_value,
            groupUniqArrayIf(CAST(currency AS Nullable(String)), currency IS NOT NULL
                AND ((NOT reversal AND NOT held) OR (reversal AND reverses_conversion_id IN (SELECT conversion_id FROM counted)))) AS currencies
        FROM refedge_attributions FINAL
        WHERE matched AND occurred_at >= {from:DateTime64(3)} AND occurred_at < {to:DateTime64(3)}
        GROUP BY program_id, campaign_id, advocate_id, channel, variant
    )
SELECT
    program_id, campaign_id, advocate_id, channel, variant,
    sum(n_human) AS human_clicks,
    sum(n_bot) AS bot_clicks,
    sum(n_visitors) AS visitors,
    sum(n_conversions) AS conversions,
    sum(n_held) AS held,
    if(length(arrayDistinct(arrayFlatten(groupArray(currencies)))) > 1, NULL, sum(n_value)) AS value_minor,
    if(length(arrayDistinct(arrayFlatten(groupArray(currencies)))) = 1, arrayDistinct(arrayFlatten(groupArray(currencies)))[1], NULL) AS currency
FROM
(
    SELECT program_id, campaign_id, advocate_id, channel, variant,
           n_human, n_bot, n_visitors, toUInt64(0) AS n_conversions, toUInt64(0) AS n_held,
           CAST(0 AS Nullable(Int64)) AS n_value, CAST([] AS Array(Nullable(String))) AS currencies
    FROM clicks
    UNION ALL
    SELECT program_id, campaign_id, advocate_id, channel, variant,
           toUInt64(0), toUInt64(0), toUInt64(0), n_conversions, n_held,
           CAST(n_value AS Nullable(Int64)), currencies
    FROM credited
)
GROUP BY program_id, campaign_id, advocate_id, channel, variant
ORDER BY program_id, campaign_id, advocate_id, channel, variant
