"""Funnel metrics over :class:`ReportData`: one module the CLI, the API and the dashboard read.

Units and denominators (cohort-correct):

* An **MQL** is one entry into the mql stage; a person re-qualified after nurture is a new
  MQL (``requalified``). The period selects MQLs by the moment they *entered* mql, and each
  MQL keeps the outcomes that followed it (until its person's next MQL entry), however
  late they came: a lead counts in the cohort it entered, not when it converted.
* Reaching a later stage counts as passing the earlier ones (mql → sql directly has passed
  SAL too).
* **MQL rate** = leads first seen in the period that ever became MQL ÷ leads first seen in
  the period. **Time to MQL** = first touch point (first seen) → first MQL entry.
* **Acceptance rate** = accepted ÷ MQLs with a sales verdict (accepted, rejected,
  disqualified or recycled by sales); **SAL rate** = accepted ÷ all MQLs.
* **Speed to lead** = MQL → first sales touch (a recorded touch, or any sales action).
  The SLA deadline is the routing's (when the handoff tables exist), else MQL time +
  ``health.speed_to_lead_hours``.
* Spend is prorated to the part of each month inside the period.

Cohort months are calendar months in ``tz`` (UTC unless asked otherwise).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from mqlengine.domain import funnel
from mqlengine.domain.funnel import HealthInputs, HealthRules, rate
from mqlengine.errors import ValidationError
from mqlengine.reports.data import ReportData
from mqlengine.reports.query import DIMENSIONS, Filters, Query, check_dimension, fetch_rows, rounded

# --------------------------------------------------------------------------- funnel

_ENTRY_AGGREGATES = """
    count(*) AS mqls,
    count(*) FILTER (reactivated) AS requalified,
    count(DISTINCT person_id) AS mql_persons,
    count(sal_at) AS sal,
    count(sql_at) AS sql,
    count(opp_at) AS opportunities,
    count(won_at) AS customers,
    count(decided_at) AS reviewed,
    count(rejected_at) AS rejected,
    count(recycled_at) AS recycled,
    count(disqualified_at) AS disqualified,
    count(demoted_at) AS demoted,
    count(lost_at) AS lost,
    coalesce(sum(pipeline_amount), 0) AS pipeline,
    coalesce(sum(revenue_amount), 0) AS revenue,
    quantile_cont(epoch(mql_at - first_seen_at) / 86400.0, 0.5)
        FILTER (NOT reactivated) AS time_to_mql_p50_days,
    quantile_cont(epoch(mql_at - first_seen_at) / 86400.0, 0.9)
        FILTER (NOT reactivated) AS time_to_mql_p90_days,
    avg(epoch(mql_at - first_seen_at) / 86400.0) FILTER (NOT reactivated) AS time_to_mql_mean_days
"""


def _spend_sql(key: str | None, filters: Filters, q: Query) -> str | None:
    """Spend per key, prorated to the period; None when this breakdown has no spend."""
    if key not in (None, "channel", "campaign", "cohort"):
        return None
    f = filters
    if f.mql_type or f.definition_version or f.team or f.rep or f.source:
        return None  # spend is booked per channel/campaign only
    q.params["since_s"] = f.since
    q.params["until_s"] = f.until
    month_end = "(month + INTERVAL 1 MONTH)"
    lo = "greatest(month::TIMESTAMPTZ, coalesce($since_s, month::TIMESTAMPTZ))"
    hi = f"least({month_end}::TIMESTAMPTZ, coalesce($until_s, {month_end}::TIMESTAMPTZ))"
    share = (
        f"greatest(0, epoch({hi} - {lo})) / epoch({month_end}::TIMESTAMPTZ - month::TIMESTAMPTZ)"
    )
    where = ["TRUE"]
    if f.channel is not None:
        q.params["f_channel"] = f.channel
        where.append("channel = $f_channel")
    if f.campaign is not None:
        q.params["f_campaign"] = f.campaign
        where.append("campaign = $f_campaign")
    key_sql = {
        None: "'total'",
        "channel": "channel",
        "campaign": "coalesce(nullif(campaign, ''), channel)",
        "cohort": "strftime(month, '%Y-%m')",
    }[key]
    return (
        f"SELECT {key_sql} AS key, sum(amount * {share}) AS spend, "
        f"string_agg(DISTINCT currency, ',') AS currency FROM spend "
        f"WHERE {' AND '.join(where)} GROUP BY 1"
    )


def _funnel_row(row: dict[str, Any]) -> dict[str, Any]:
    mqls = row.get("mqls") or 0
    leads = row.get("new_leads") or 0
    spend = row.get("spend")
    out = {
        "key": row.get("key"),
        "new_leads": leads,
        "leads_became_mql": row.get("leads_became_mql") or 0,
        "mql_rate": rate(row.get("leads_became_mql") or 0, leads),
        "mqls": mqls,
        "mql_persons": row.get("mql_persons") or 0,
        "requalified": row.get("requalified") or 0,
        "requalification_rate": rate(row.get("requalified") or 0, mqls),
        "sal": row.get("sal") or 0,
        "sql": row.get("sql") or 0,
        "opportunities": row.get("opportunities") or 0,
        "customers": row.get("customers") or 0,
        "reviewed": row.get("reviewed") or 0,
        "sal_rate": rate(row.get("sal") or 0, mqls),
        "acceptance_rate": rate(row.get("sal") or 0, row.get("reviewed") or 0),
        "mql_to_sql": rate(row.get("sql") or 0, mqls),
        "mql_to_opportunity": rate(row.get("opportunities") or 0, mqls),
        "mql_to_customer": rate(row.get("customers") or 0, mqls),
        "rejected": row.get("rejected") or 0,
        "recycled": row.get("recycled") or 0,
        "disqualified": row.get("disqualified") or 0,
        "demoted": row.get("demoted") or 0,
        "rejection_rate": rate(row.get("rejected") or 0, mqls),
        "recycle_rate": rate(row.get("recycled") or 0, mqls),
        "disqualification_rate": rate(row.get("disqualified") or 0, mqls),
        "time_to_mql_p50_days": row.get("time_to_mql_p50_days"),
        "time_to_mql_p90_days": row.get("time_to_mql_p90_days"),
        "time_to_mql_mean_days": row.get("time_to_mql_mean_days"),
        "pipeline": row.get("pipeline") or 0.0,
        "revenue": row.get("revenue") or 0.0,
        "pipeline_per_mql": funnel.per(row.get("pipeline") or 0.0, mqls),
        "revenue_per_mql": funnel.per(row.get("revenue") or 0.0, mqls),
        "spend": spend,
        "currency": row.get("currency"),
        "cost_per_mql": funnel.per(spend, mqls) if spend is not None else None,
        "cac": funnel.per(spend, row.get("customers") or 0) if spend is not None else None,
    }
    return {k: rounded(v) for k, v in out.items()}


def funnel_report(
    data: ReportData, filters: Filters, by: str | None = None
) -> list[dict[str, Any]]:
    """The funnel (volumes, conversion rates, reasons counts, money) per breakdown key;
    without ``by`` one row with key ``total``."""
    by = check_dimension(by)
    q = Query(filters)
    entry_key, lead_key = DIMENSIONS[by] if by else ("'total'", "'total'")
    entries = (
        f"SELECT {entry_key} AS key, {_ENTRY_AGGREGATES} FROM entries "
        f"WHERE {q.where('mql_at')} GROUP BY 1"
    )
    leads_where = q.where("first_seen_at", on_leads=True)
    if lead_key is not None and not (filters.mql_type or filters.definition_version):
        leads = (
            f"SELECT {lead_key} AS key, count(*) AS new_leads, "
            f"count(first_mql_at) AS leads_became_mql FROM leads WHERE {leads_where} GROUP BY 1"
        )
    else:
        leads = "SELECT NULL::VARCHAR AS key, NULL::BIGINT AS new_leads, "
        leads += "NULL::BIGINT AS leads_became_mql WHERE FALSE"
    spend = _spend_sql(by, filters, q)
    if spend is None:
        spend = "SELECT NULL::VARCHAR AS key, NULL::DOUBLE AS spend, NULL::VARCHAR AS currency "
        spend += "WHERE FALSE"
        spend_known = False
    else:
        spend_known = True
    sql = f"""
        WITH e AS ({entries}), l AS ({leads}), s AS ({spend}),
        k AS (SELECT key FROM e UNION SELECT key FROM l UNION SELECT key FROM s)
        SELECT k.key, e.* EXCLUDE (key), l.new_leads, l.leads_became_mql,
               {"coalesce(s.spend, 0)" if spend_known else "NULL"} AS spend, s.currency
        FROM k LEFT JOIN e USING (key) LEFT JOIN l USING (key) LEFT JOIN s USING (key)
        ORDER BY coalesce(e.mqls, 0) DESC, k.key
    """
    rows = [_funnel_row(r) for r in fetch_rows(data, sql, q.used(sql))]
    if by is None and not rows:
        rows = [_funnel_row({"key": "total"})]
    if lead_key is None or filters.mql_type or filters.definition_version:
        for row in rows:  # leads have no MQL type or definition version yet
            row["new_leads"] = row["mql_rate"] = row["leads_became_mql"] = None
    if by in ("cohort", "week"):
        rows.sort(key=lambda r: str(r["key"]))
    return rows


def funnel_total(data: ReportData, filters: Filters) -> dict[str, Any]:
    return funnel_report(data, filters)[0]


# --------------------------------------------------------------------------- SLA


def sla_report(
    data: ReportData,
    filters: Filters,
    *,
    now: datetime,
    speed_to_lead_hours: float,
    by: str | None = None,
) -> list[dict[str, Any]]:
    """Speed to lead (MQL → first touch) p50/p90, SLA met/breached/pending, compliance."""
    by = check_dimension(by)
    q = Query(filters)
    key = DIMENSIONS[by][0] if by else "'total'"
    q.params["now"] = now
    q.params["fallback_hours"] = float(speed_to_lead_hours)
    due = "coalesce(due_at, mql_at + to_microseconds(CAST($fallback_hours * 3600e6 AS BIGINT)))"
    sql = f"""
        SELECT {key} AS key, count(*) AS mqls, count(first_touch_at) AS touched,
            count(due_at) AS with_routing_sla,
            quantile_cont(epoch(first_touch_at - mql_at) / 3600.0, 0.5) AS speed_to_lead_p50_hours,
            quantile_cont(epoch(first_touch_at - mql_at) / 3600.0, 0.9) AS speed_to_lead_p90_hours,
            count(*) FILTER (first_touch_at IS NOT NULL AND first_touch_at <= {due}) AS sla_met,
            count(*) FILTER ((first_touch_at IS NOT NULL AND first_touch_at > {due})
                             OR (first_touch_at IS NULL AND {due} < $now)) AS breaches,
            count(*) FILTER (first_touch_at IS NULL AND {due} >= $now) AS pending
        FROM entries WHERE {q.where("mql_at")} GROUP BY 1 ORDER BY 2 DESC, 1
    """
    out = []
    for row in fetch_rows(data, sql, q.used(sql)):
        row["sla_compliance"] = rate(row["sla_met"], row["sla_met"] + row["breaches"])
        row["untouched"] = row["mqls"] - row["touched"]
        out.append({k: rounded(v) for k, v in row.items()})
    if by is None and not out:
        out = [
            {
                "key": "total",
                "mqls": 0,
                "touched": 0,
                "untouched": 0,
                "with_routing_sla": 0,
                "speed_to_lead_p50_hours": None,
                "speed_to_lead_p90_hours": None,
                "sla_met": 0,
                "breaches": 0,
                "pending": 0,
                "sla_compliance": None,
            }
        ]
    return out


# --------------------------------------------------------------------------- velocity


def velocity_report(
    data: ReportData, filters: Filters, by: str | None = None
) -> list[dict[str, Any]]:
    """Pipeline velocity = (opportunities × win rate × average deal) ÷ sales cycle (days).

    Over the MQLs of the period: opportunities they became, deals won and lost after them,
    average won revenue, and the cycle from SQL to won.
    """
    by = check_dimension(by)
    q = Query(filters)
    key = DIMENSIONS[by][0] if by else "'total'"
    sql = f"""
        SELECT {key} AS key, count(*) AS mqls, count(opp_at) AS opportunities,
            count(won_at) AS won, count(lost_at) FILTER (won_at IS NULL) AS lost,
            coalesce(sum(pipeline_amount), 0) AS pipeline,
            avg(revenue_amount) FILTER (won_at IS NOT NULL) AS average_deal,
            avg(epoch(won_at - coalesce(sql_at, opp_at, won_at)) / 86400.0)
                FILTER (won_at IS NOT NULL) AS cycle_days,
            avg(epoch(won_at - mql_at) / 86400.0) FILTER (won_at IS NOT NULL) AS mql_to_won_days
        FROM entries WHERE {q.where("mql_at")} GROUP BY 1 ORDER BY 2 DESC, 1
    """
    out = []
    for row in fetch_rows(data, sql, q.used(sql)):
        row["win_rate"] = rate(row["won"], row["won"] + row["lost"])
        row["velocity_per_day"] = funnel.pipeline_velocity(
            row["opportunities"], row["win_rate"], row["average_deal"], row["cycle_days"]
        )
        out.append({k: rounded(v) for k, v in row.items()})
    return out


# --------------------------------------------------------------------------- reasons


def reasons_report(data: ReportData, filters: Filters) -> dict[str, Any]:
    """Why MQLs were rejected, recycled, disqualified or lost, and which definition rules
    scored the rejected ones (compared with accepted ones, to tune the definition)."""
    q = Query(filters)
    where = q.where("mql_at")
    reasons_sql = f"""
        SELECT h.action, h.reason, count(*) AS count
        FROM history h JOIN (SELECT * FROM entries WHERE {where}) e
          ON h.person_id = e.person_id AND h.changed_at >= e.mql_at
         AND (e.next_mql_at IS NULL OR h.changed_at < e.next_mql_at)
        WHERE h.action IN ('reject', 'recycle', 'disqualify', 'lost')
        GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2
    """
    reasons = fetch_rows(data, reasons_sql, q.used(reasons_sql))
    totals: dict[str, int] = {}
    for row in reasons:
        totals[row["action"]] = totals.get(row["action"], 0) + row["count"]
    for row in reasons:
        row["share"] = rounded(rate(row["count"], totals[row["action"]]))
    rules_sql = f"""
        WITH e AS (
            SELECT entry_id,
                   (rejected_at IS NOT NULL OR disqualified_at IS NOT NULL) AND sal_at IS NULL
                       AS rejected,
                   sal_at IS NOT NULL AS accepted
            FROM entries WHERE {where}
        ),
        n AS (SELECT count(*) FILTER (rejected) AS rej, count(*) FILTER (accepted) AS acc FROM e)
        SELECT r.rule,
               count(*) FILTER (e.rejected) AS in_rejected,
               count(*) FILTER (e.accepted) AS in_accepted,
               any_value(n.rej) AS rejected_mqls, any_value(n.acc) AS accepted_mqls,
               avg(r.points) FILTER (e.rejected) AS mean_points_rejected
        FROM e JOIN mql_rules r ON r.history_id = e.entry_id AND r.points > 0
        CROSS JOIN n
        GROUP BY 1 HAVING count(*) FILTER (e.rejected) > 0
        ORDER BY 2 DESC, 1
    """
    rules = []
    for row in fetch_rows(data, rules_sql, q.used(rules_sql)):
        share_rejected = rate(row["in_rejected"], row["rejected_mqls"])
        share_accepted = rate(row["in_accepted"], row["accepted_mqls"])
        row["share_of_rejected"] = share_rejected
        row["share_of_accepted"] = share_accepted
        row["lift"] = rate(share_rejected, share_accepted)
        rules.append({k: rounded(v) for k, v in row.items()})
    return {"reasons": reasons, "totals": totals, "rules_in_rejected": rules}


# --------------------------------------------------------------------------- over time


def volume_over_time(
    data: ReportData, filters: Filters, *, grain: str = "week", by: str = "channel"
) -> dict[str, Any]:
    """MQLs per week (or month) per breakdown key, as chart series."""
    if grain not in ("day", "week", "month"):
        raise ValidationError("grain must be day, week or month")
    by_dim = check_dimension(by) or "channel"
    q = Query(filters)
    key = DIMENSIONS[by_dim][0]
    sql = f"""
        SELECT strftime(date_trunc('{grain}', timezone($tz, mql_at)), '%Y-%m-%d') AS bucket,
               {key} AS key, count(*) AS mqls
        FROM entries WHERE {q.where("mql_at")} GROUP BY 1, 2 ORDER BY 1, 2
    """
    rows = fetch_rows(data, sql, q.used(sql))
    buckets = sorted({r["bucket"] for r in rows})
    index = {b: i for i, b in enumerate(buckets)}
    series: dict[str, list[int]] = {}
    for r in rows:
        series.setdefault(str(r["key"]), [0] * len(buckets))[index[r["bucket"]]] = r["mqls"]
    ordered = sorted(series.items(), key=lambda kv: -sum(kv[1]))
    return {
        "grain": grain,
        "by": by_dim,
        "buckets": buckets,
        "series": [{"key": k, "values": v} for k, v in ordered],
    }


def events_in_period(data: ReportData, filters: Filters) -> int:
    q = Query(replace(filters, channel=None, source=None, campaign=None))
    parts = ["TRUE"]
    if filters.since is not None:
        q.params["since"] = filters.since
        parts.append("day >= CAST(timezone('UTC', $since) AS DATE)")
    if filters.until is not None:
        q.params["until"] = filters.until
        parts.append("day < CAST(timezone('UTC', $until) AS DATE)")
    sql = f"SELECT coalesce(sum(events), 0) AS n FROM events_daily WHERE {' AND '.join(parts)}"
    return int(fetch_rows(data, sql, q.used(sql))[0]["n"])


# --------------------------------------------------------------------------- health


def health_report(
    data: ReportData, rules: HealthRules, *, now: datetime, filters: Filters | None = None
) -> dict[str, Any]:
    """Alerts and the 0–100 health score over the last ``rules.window_days``."""
    base = filters or Filters()
    window = timedelta(days=rules.window_days)
    current = replace(base, since=now - window, until=now)
    previous = replace(base, since=now - 2 * window, until=now - window)
    totals = funnel_total(data, current)
    sla = sla_report(data, current, now=now, speed_to_lead_hours=rules.speed_to_lead_hours)[0]
    before = funnel_total(data, previous)
    inputs = HealthInputs(
        mqls=int(totals["mqls"]),
        acceptance_rate=totals["acceptance_rate"],
        mql_to_sql=totals["mql_to_sql"],
        sla_compliance=sla["sla_compliance"],
        speed_to_lead_p50_hours=sla["speed_to_lead_p50_hours"],
        previous_mqls=int(before["mqls"]) or None,
    )
    alerts = funnel.health_alerts(inputs, rules)
    score = funnel.health_score(inputs, rules)
    return {
        "as_of": now.isoformat(),
        "window_days": rules.window_days,
        "since": current.since.isoformat() if current.since else None,
        "until": now.isoformat(),
        "rules": asdict(rules),
        "inputs": {k: rounded(v) for k, v in asdict(inputs).items()},
        "alerts": [asdict(a) for a in alerts],
        "score": score.score,
        "components": [{k: rounded(v) for k, v in asdict(c).items()} for c in score.components],
        "formula": "100 × Σ(weight × min(1, value/target)) ÷ Σ weights of components with data",
    }


# --------------------------------------------------------------------------- reps & queues


def open_mqls(
    data: ReportData,
    filters: Filters,
    *,
    now: datetime,
    speed_to_lead_hours: float,
    limit: int = 50,
) -> dict[str, Any]:
    """Open MQLs (in mql stage now) per owner/team with age and SLA state, oldest first."""
    q = Query(replace(filters, since=None, until=None))
    q.params["now"] = now
    q.params["fallback_hours"] = float(speed_to_lead_hours)
    due = "coalesce(e.due_at, e.mql_at + to_microseconds(CAST($fallback_hours * 3600e6 AS BIGINT)))"
    base = f"""
        SELECT e.person_id, p.email, e.mql_type, e.mql_at, coalesce(e.owner, 'unassigned') AS owner,
               coalesce(e.team, 'unassigned') AS team, e.first_touch_at, {due} AS due_at,
               epoch($now - e.mql_at) / 3600.0 AS age_hours,
               CASE WHEN e.first_touch_at IS NOT NULL AND e.first_touch_at <= {due} THEN 'met'
                    WHEN e.first_touch_at IS NOT NULL THEN 'breached'
                    WHEN {due} < $now THEN 'breached' ELSE 'pending' END AS sla_state
        FROM (SELECT * FROM entries WHERE next_mql_at IS NULL AND {q.where("mql_at")}) e
        JOIN persons p ON p.id = e.person_id
        WHERE p.stage = 'mql'
    """
    queues_sql = f"""
        SELECT team, owner, count(*) AS open_mqls, max(age_hours) AS oldest_hours,
               quantile_cont(age_hours, 0.5) AS median_age_hours,
               count(*) FILTER (sla_state = 'breached') AS breached,
               count(*) FILTER (sla_state = 'pending') AS pending,
               count(*) FILTER (first_touch_at IS NULL) AS untouched
        FROM ({base}) GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
    """
    list_sql = f"SELECT * FROM ({base}) ORDER BY age_hours DESC LIMIT {int(limit)}"
    queues = [
        {k: rounded(v) for k, v in r.items()}
        for r in fetch_rows(data, queues_sql, q.used(queues_sql))
    ]
    leads = []
    for r in fetch_rows(data, list_sql, q.used(list_sql)):
        for key in ("mql_at", "first_touch_at", "due_at"):
            r[key] = r[key].isoformat() if r[key] is not None else None
        leads.append({k: rounded(v) for k, v in r.items()})
    return {"queues": queues, "leads": leads, "owners_known": data.features.get("owners", False)}


# --------------------------------------------------------------------------- overview


FUNNEL_STEPS = (
    ("new_leads", "New leads"),
    ("mqls", "MQLs"),
    ("sal", "SAL"),
    ("sql", "SQL"),
    ("opportunities", "Opportunities"),
    ("customers", "Customers"),
)


def funnel_steps(total: dict[str, Any]) -> list[dict[str, Any]]:
    """The funnel as steps with the conversion from the previous step (MQL rate for MQLs)."""
    steps = []
    previous: Any = None
    for key, label in FUNNEL_STEPS:
        value = total.get(key)
        if key == "mqls":
            conversion = total.get("mql_rate")
        elif key == "new_leads":
            conversion = None
        else:
            conversion = rate(value, previous)
        steps.append(
            {"step": key, "label": label, "count": value, "conversion": rounded(conversion)}
        )
        previous = value
    return steps


def overview(
    data: ReportData, filters: Filters, rules: HealthRules, *, now: datetime
) -> dict[str, Any]:
    """Everything the dashboard's overview shows, in one call."""
    total = funnel_total(data, filters)
    return {
        "filters": filters.as_dict(),
        "funnel": total,
        "steps": funnel_steps(total),
        "volume": volume_over_time(data, filters, grain="week", by="channel"),
        "sla": sla_report(data, filters, now=now, speed_to_lead_hours=rules.speed_to_lead_hours)[0],
        "health": health_report(data, rules, now=now, filters=_attributes_only(filters)),
        "events": events_in_period(data, filters),
    }


def _attributes_only(filters: Filters) -> Filters:
    return replace(filters, since=None, until=None)


def dimension_values(data: ReportData, dimension: str) -> list[str]:
    """Distinct values of a breakdown (for filter drop-downs)."""
    dim = check_dimension(dimension)
    if dim is None or dim in ("cohort", "week"):
        return []
    key = DIMENSIONS[dim][0]
    sql = f"SELECT DISTINCT {key} AS v FROM entries WHERE {key} IS NOT NULL ORDER BY 1"
    return [str(r["v"]) for r in fetch_rows(data, sql, {})]
