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
from typing import TYPE_CHECKING, Any

from mqlengine.domain import funnel
from mqlengine.domain.funnel import HealthInputs, HealthRules, rate
from mqlengine.errors import ValidationError
from mqlengine.reports.query import (
    DIMENSIONS,
    FILTER_SQL,
    MQL_TIME_DIMENSIONS,
    Filters,
    Query,
    check_dimension,
    fetch_rows,
    rounded,
)
from mqlengine.reports.rates import Rates

if TYPE_CHECKING:
    from mqlengine.reports.source import ReportSource

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
    count(lost_at) FILTER (won_at IS NULL) AS lost,
    count(won_before_at) FILTER (won_at IS NULL) AS won_before_mql,
    sum(pipeline_amount) AS pipeline,
    sum(revenue_amount) AS revenue,
    count(*) FILTER (NOT reactivated AND first_seen_at IS NOT NULL) AS first_mqls,
    quantile_cont(epoch(mql_at - first_seen_at) / 86400.0, 0.5)
        FILTER (NOT reactivated) AS time_to_mql_p50_days,
    quantile_cont(epoch(mql_at - first_seen_at) / 86400.0, 0.9)
        FILTER (NOT reactivated) AS time_to_mql_p90_days,
    avg(epoch(mql_at - first_seen_at) / 86400.0) FILTER (NOT reactivated) AS time_to_mql_mean_days
"""

# Why a figure is "—": the reasons rows carry in ``notes`` (field → reason).
NO_MQLS = "no MQLs in this row"
NO_LEADS = "no leads first seen in the period"
NO_VERDICT = "no sales verdict (accept, reject, recycle, disqualify) on these MQLs"
NO_SQL_STAGE = (
    "the data has no separate SQL stage (no lead ever entered sql): SQL counts would only "
    "repeat opportunities"
)
NO_SPEND = "no spend recorded for this row"
SPEND_NOT_BY = "spend is booked per channel and campaign only"
NO_CUSTOMERS = "no customers won from these MQLs"
NO_FIRST_MQL = "no first-time MQLs in this row"


def _lead_note(by: str | None) -> str:
    if by in MQL_TIME_DIMENSIONS:
        return (
            f"leads have no MQL {by}: they are counted by the month first seen "
            "(use --by lead_cohort for leads and their MQLs by the month first seen)"
        )
    return f"leads have no {by} yet (it is set when they become MQL)"


def _spend_sql(key: str | None, filters: Filters, q: Query) -> str | None:
    """Spend per key and currency, prorated to the period; None when this breakdown has
    no spend."""
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
    where = [f"epoch({hi} - {lo}) > 0"]
    if f.channel is not None:
        q.params["f_channel"] = f.channel
        where.append(f"{FILTER_SQL['channel']} = $f_channel")
    if f.campaign is not None:
        q.params["f_campaign"] = f.campaign
        where.append("campaign = $f_campaign")
    key_sql = {
        None: "'total'",
        "channel": DIMENSIONS["channel"][0],
        "campaign": f"coalesce(nullif(campaign, ''), {DIMENSIONS['channel'][0]})",
        "cohort": "strftime(month, '%Y-%m')",
    }[key]
    return (
        f"SELECT {key_sql} AS key, currency, sum(amount * {share}) AS spend FROM spend "
        f"WHERE {' AND '.join(where)} GROUP BY 1, 2"
    )


def _money(
    row: dict[str, Any],
    spends: dict[str, float] | None,
    rates: Rates | None,
    notes: dict[str, str],
) -> None:
    """Spend, cost per MQL and CAC of one row; "—" (None) with a reason where no figure
    can be known. Currencies are never added together without rates."""
    mqls, customers = row["mqls"], row["customers"]
    row["spend_by_currency"] = {c: rounded(a) for c, a in sorted((spends or {}).items())}
    row["spend"] = row["currency"] = row["cost_per_mql"] = row["cac"] = None
    if spends is None:
        for name in ("spend", "cost_per_mql", "cac"):
            notes[name] = SPEND_NOT_BY
        return
    if not spends:
        for name in ("spend", "cost_per_mql", "cac"):
            notes[name] = NO_SPEND
        return
    if len(spends) > 1 and rates is None:
        listed = ", ".join(f"{a:,.2f} {c}" for c, a in sorted(spends.items()))
        why = f"spend in several currencies ({listed}) is not added up; give --rates to convert"
        for name in ("spend", "cost_per_mql", "cac"):
            notes[name] = why
        return
    if rates is not None:
        total = sum(rates.convert(a, c) for c, a in spends.items())
        currency = rates.base
    else:
        ((currency, total),) = spends.items()
    row["spend"], row["currency"] = total, currency
    row["cost_per_mql"] = funnel.per(total, mqls)
    if row["cost_per_mql"] is None:
        notes["cost_per_mql"] = NO_MQLS
    row["cac"] = funnel.per(total, customers)
    if row["cac"] is None:
        notes["cac"] = NO_CUSTOMERS


def _funnel_row(
    row: dict[str, Any],
    *,
    by: str | None,
    leads_known: bool,
    sql_known: bool,
    spends: dict[str, float] | None,
    rates: Rates | None,
) -> dict[str, Any]:
    notes: dict[str, str] = {}
    mqls = row.get("mqls") or 0

    def count(name: str) -> int:
        return int(row.get(name) or 0)

    def share(name: str, numerator: int, denominator: int, why: str) -> None:
        out[name] = rate(numerator, denominator)
        if out[name] is None:
            notes[name] = why

    out: dict[str, Any] = {"key": row.get("key")}
    if leads_known:
        out["new_leads"] = count("new_leads")
        out["leads_became_mql"] = count("leads_became_mql")
        share("mql_rate", out["leads_became_mql"], out["new_leads"], NO_LEADS)
    else:
        out["new_leads"] = out["leads_became_mql"] = out["mql_rate"] = None
        for name in ("new_leads", "leads_became_mql", "mql_rate"):
            notes[name] = _lead_note(by)
    out.update(
        mqls=mqls,
        mql_persons=count("mql_persons"),
        requalified=count("requalified"),
    )
    share("requalification_rate", out["requalified"], mqls, NO_MQLS)
    out.update(sal=count("sal"), reviewed=count("reviewed"))
    if sql_known:
        out["sql"] = count("sql")
    else:
        out["sql"] = None
        notes["sql"] = NO_SQL_STAGE
    out.update(opportunities=count("opportunities"), customers=count("customers"))
    share("sal_rate", out["sal"], mqls, NO_MQLS)
    share("acceptance_rate", out["sal"], out["reviewed"], NO_MQLS if not mqls else NO_VERDICT)
    if sql_known:
        share("mql_to_sql", out["sql"], mqls, NO_MQLS)
    else:
        out["mql_to_sql"] = None
        notes["mql_to_sql"] = NO_SQL_STAGE
    share("mql_to_opportunity", out["opportunities"], mqls, NO_MQLS)
    share("mql_to_customer", out["customers"], mqls, NO_MQLS)
    for name, rate_name in (
        ("rejected", "rejection_rate"),
        ("recycled", "recycle_rate"),
        ("disqualified", "disqualification_rate"),
        ("lost", "loss_rate"),
    ):
        out[name] = count(name)
        share(rate_name, out[name], mqls, NO_MQLS)
    out["demoted"] = count("demoted")
    out["won_before_mql"] = count("won_before_mql")
    if out["won_before_mql"]:
        notes["customers"] = (
            f"{out['won_before_mql']} win(s) dated before the lead's MQL are not counted as "
            "won from an MQL"
        )
    out["first_mqls"] = count("first_mqls")
    for stat in ("p50", "p90", "mean"):
        name = f"time_to_mql_{stat}_days"
        out[name] = row.get(name)
        if out[name] is None:
            notes[name] = NO_FIRST_MQL
    out["pipeline"] = row.get("pipeline") or 0.0
    out["revenue"] = row.get("revenue") or 0.0
    out["pipeline_per_mql"] = funnel.per(out["pipeline"], mqls)
    out["revenue_per_mql"] = funnel.per(out["revenue"], mqls)
    for name in ("pipeline_per_mql", "revenue_per_mql"):
        if out[name] is None:
            notes[name] = NO_MQLS
    _money(out, spends, rates, notes)
    out = {k: (v if isinstance(v, dict) else rounded(v)) for k, v in out.items()}
    out["notes"] = notes
    return out


def funnel_report(
    data: ReportSource, filters: Filters, by: str | None = None, *, rates: Rates | None = None
) -> list[dict[str, Any]]:
    """The funnel (volumes, conversion rates, reasons counts, money) per breakdown key;
    without ``by`` one row with key ``total``. Each row's ``notes`` say why a figure is
    missing (None, shown as "—")."""
    by = check_dimension(by)
    q = Query(filters)
    entry_key, lead_key = DIMENSIONS[by] if by else ("'total'", "'total'")
    entries = (
        f"SELECT {entry_key} AS key, {_ENTRY_AGGREGATES} FROM entries "
        f"WHERE {q.where('mql_at')} GROUP BY 1"
    )
    leads_known = (
        lead_key is not None
        and by not in MQL_TIME_DIMENSIONS
        and not (filters.mql_type or filters.definition_version)
    )
    leads_where = q.where("first_seen_at", on_leads=True)
    if leads_known:
        leads = (
            f"SELECT {lead_key} AS key, count(*) AS new_leads, "
            f"count(first_mql_at) AS leads_became_mql FROM leads WHERE {leads_where} GROUP BY 1"
        )
    else:
        leads = "SELECT NULL::VARCHAR AS key, NULL::BIGINT AS new_leads, "
        leads += "NULL::BIGINT AS leads_became_mql WHERE FALSE"
    sql = f"""
        WITH e AS ({entries}), l AS ({leads}),
        k AS (SELECT key FROM e UNION SELECT key FROM l)
        SELECT k.key, e.* EXCLUDE (key), l.new_leads, l.leads_became_mql
        FROM k LEFT JOIN e USING (key) LEFT JOIN l USING (key)
    """
    raw = {r["key"]: r for r in fetch_rows(data, sql, q.used(sql), keyed=True)}
    spend_sql = _spend_sql(by, filters, q)
    spends: dict[Any, dict[str, float]] | None = None
    if spend_sql is not None:
        spends = {}
        for r in fetch_rows(data, spend_sql, q.used(spend_sql), keyed=True):
            spends.setdefault(r["key"], {})[r["currency"]] = r["spend"]
            raw.setdefault(r["key"], {"key": r["key"]})
    if by is None and not raw:
        raw["total"] = {"key": "total"}
    sql_known = bool(data.features.get("sql_stage"))
    rows = [
        _funnel_row(
            r,
            by=by,
            leads_known=leads_known,
            sql_known=sql_known,
            spends=None if spends is None else spends.get(key, {}),
            rates=rates,
        )
        for key, r in raw.items()
    ]
    if by in ("cohort", "week", "lead_cohort"):
        rows.sort(key=lambda r: str(r["key"]))
    else:
        rows.sort(key=lambda r: (-(r["mqls"] or 0), str(r["key"])))
    return rows


def funnel_total(
    data: ReportSource, filters: Filters, *, rates: Rates | None = None
) -> dict[str, Any]:
    return funnel_report(data, filters, rates=rates)[0]


# --------------------------------------------------------------------------- SLA

NO_TOUCH_DATA = (
    "no sales touches recorded (stage rows written by an import or by scoring are not "
    "touches): speed to lead and SLA compliance cannot be known"
)
NO_TOUCHES = "no MQL in this row was touched by sales"
IMPORTED_MQLS = (
    "MQLs from imported history are left out of speed to lead and SLA: no touch was recorded "
    "for them"
)
ONLY_IMPORTED = (
    "every MQL in this row comes from imported history, which records no touches: speed "
    "to lead and SLA compliance cannot be known"
)
NONE_DUE = "no MQL in this row has reached its SLA deadline"


def sla_report(
    data: ReportSource,
    filters: Filters,
    *,
    now: datetime,
    speed_to_lead_hours: float,
    by: str | None = None,
) -> list[dict[str, Any]]:
    """Speed to lead (MQL → first sales touch) p50/p90, SLA met/breached/pending, compliance.

    Only touches by sales count (a recorded touch, or a sales action on the MQL), and only
    MQLs that went through the handoff (``imported_mqls`` are left out: an import records
    no touches); without any, every touch figure is "—" with a note rather than 0 h or
    100 %."""
    by = check_dimension(by)
    q = Query(filters)
    key = DIMENSIONS[by][0] if by else "'total'"
    q.params["now"] = now
    q.params["fallback_hours"] = float(speed_to_lead_hours)
    due = "coalesce(due_at, mql_at + to_microseconds(CAST($fallback_hours * 3600e6 AS BIGINT)))"
    speed = "epoch(first_touch_at - mql_at) / 3600.0"
    live = "NOT imported"
    sql = f"""
        SELECT {key} AS key, count(*) AS mqls, count(*) FILTER (imported) AS imported_mqls,
            count(first_touch_at) FILTER ({live}) AS touched,
            count(due_at) AS with_routing_sla,
            quantile_cont({speed}, 0.5) FILTER ({live}) AS speed_to_lead_p50_hours,
            quantile_cont({speed}, 0.9) FILTER ({live}) AS speed_to_lead_p90_hours,
            avg({speed}) FILTER ({live}) AS speed_to_lead_mean_hours,
            count(*) FILTER ({live} AND first_touch_at IS NOT NULL AND first_touch_at <= {due})
                AS sla_met,
            count(*) FILTER ({live} AND ((first_touch_at IS NOT NULL AND first_touch_at > {due})
                             OR (first_touch_at IS NULL AND {due} < $now))) AS breaches,
            count(*) FILTER ({live} AND first_touch_at IS NULL AND {due} >= $now) AS pending
        FROM entries WHERE {q.where("mql_at")} GROUP BY 1 ORDER BY 2 DESC, 1
    """
    rows = fetch_rows(data, sql, q.used(sql))
    if by is None and not rows:
        rows = [
            {
                "key": "total",
                "mqls": 0,
                "imported_mqls": 0,
                "touched": 0,
                "with_routing_sla": 0,
                "speed_to_lead_p50_hours": None,
                "speed_to_lead_p90_hours": None,
                "speed_to_lead_mean_hours": None,
                "sla_met": 0,
                "breaches": 0,
                "pending": 0,
            }
        ]
    known = bool(data.features.get("sales_touches"))
    out = []
    for row in rows:
        notes: dict[str, str] = {}
        live_mqls = row["mqls"] - row["imported_mqls"]
        row["untouched"] = live_mqls - row["touched"]
        if row["imported_mqls"]:
            notes["imported_mqls"] = IMPORTED_MQLS
        if not known or not live_mqls:
            for name in (
                "touched",
                "untouched",
                "speed_to_lead_p50_hours",
                "speed_to_lead_p90_hours",
                "speed_to_lead_mean_hours",
                "sla_met",
                "breaches",
                "pending",
                "sla_compliance",
            ):
                row[name] = None
                notes[name] = NO_TOUCH_DATA if not known else ONLY_IMPORTED
        else:
            row["sla_compliance"] = rate(row["sla_met"], row["sla_met"] + row["breaches"])
            if row["sla_compliance"] is None:
                notes["sla_compliance"] = NONE_DUE if row["mqls"] else NO_MQLS
            for stat in ("p50", "p90", "mean"):
                if row.get(f"speed_to_lead_{stat}_hours") is None:
                    notes[f"speed_to_lead_{stat}_hours"] = NO_TOUCHES if row["mqls"] else NO_MQLS
        out.append({**{k: rounded(v) for k, v in row.items()}, "notes": notes})
    return out


# --------------------------------------------------------------------------- velocity

NO_LOSSES = "no lost deals recorded: won ÷ (won + lost) would say 100 % without knowing the losses"
NO_WINS = "no deals won from these MQLs"


def velocity_report(
    data: ReportSource, filters: Filters, by: str | None = None
) -> list[dict[str, Any]]:
    """Pipeline velocity = (opportunities × win rate × average deal) ÷ sales cycle (days).

    Over the MQLs of the period: opportunities they became, deals won and lost after them,
    average won revenue, and the cycle from SQL (else the opportunity, else the MQL) to won;
    every duration with p50, p90 and mean (DuckDB ``quantile_cont``: linear interpolation,
    over the same rows on SQLite and PostgreSQL).
    """
    by = check_dimension(by)
    q = Query(filters)
    key = DIMENSIONS[by][0] if by else "'total'"
    cycle = "epoch(won_at - coalesce(sql_at, opp_at, mql_at)) / 86400.0"
    to_won = "epoch(won_at - mql_at) / 86400.0"
    sql = f"""
        SELECT {key} AS key, count(*) AS mqls, count(opp_at) AS opportunities,
            count(won_at) AS won, count(lost_at) FILTER (won_at IS NULL) AS lost,
            coalesce(sum(pipeline_amount), 0) AS pipeline,
            avg(revenue_amount) FILTER (won_at IS NOT NULL) AS average_deal,
            quantile_cont({cycle}, 0.5) AS cycle_p50_days,
            quantile_cont({cycle}, 0.9) AS cycle_p90_days,
            avg({cycle}) AS cycle_days,
            quantile_cont({to_won}, 0.5) AS mql_to_won_p50_days,
            quantile_cont({to_won}, 0.9) AS mql_to_won_p90_days,
            avg({to_won}) AS mql_to_won_days
        FROM entries WHERE {q.where("mql_at")} GROUP BY 1 ORDER BY 2 DESC, 1
    """
    out = []
    for row in fetch_rows(data, sql, q.used(sql)):
        notes: dict[str, str] = {}
        if row["lost"] == 0 and row["won"] > 0:
            row["win_rate"] = None
            notes["win_rate"] = NO_LOSSES
        else:
            row["win_rate"] = rate(row["won"], row["won"] + row["lost"])
            if row["win_rate"] is None:
                notes["win_rate"] = "no deals won or lost from these MQLs"
        for name in (
            "average_deal",
            "cycle_p50_days",
            "cycle_p90_days",
            "cycle_days",
            "mql_to_won_p50_days",
            "mql_to_won_p90_days",
            "mql_to_won_days",
        ):
            if row[name] is None:
                notes[name] = NO_WINS
        if row["won"] and row["average_deal"] is None:
            notes["average_deal"] = "no revenue recorded on the won deals"
        row["velocity_per_day"] = funnel.pipeline_velocity(
            row["opportunities"], row["win_rate"], row["average_deal"], row["cycle_days"]
        )
        if row["velocity_per_day"] is None:
            missing = [n for n in ("win_rate", "average_deal", "cycle_days") if row[n] is None] or [
                "a sales cycle longer than 0 days"
            ]
            notes["velocity_per_day"] = "needs " + ", ".join(missing)
        out.append({**{k: rounded(v) for k, v in row.items()}, "notes": notes})
    return out


# --------------------------------------------------------------------------- reasons


def reasons_report(data: ReportSource, filters: Filters) -> dict[str, Any]:
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
    data: ReportSource, filters: Filters, *, grain: str = "week", by: str = "channel"
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


def events_in_period(data: ReportSource, filters: Filters) -> int:
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
    data: ReportSource,
    rules: HealthRules,
    *,
    now: datetime,
    filters: Filters | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Alerts and the 0–100 health score over ``[since, until)``: by default the last
    ``rules.window_days`` before ``now``; the trend compares with the window of the same
    length just before it, so any past period can be judged."""
    base = filters or Filters()
    end = until or now
    start = since or end - timedelta(days=rules.window_days)
    if start >= end:
        raise ValidationError(
            f"the health window is empty: since {start.isoformat()} is not before "
            f"until {end.isoformat()}"
        )
    window = end - start
    current = replace(base, since=start, until=end)
    previous = replace(base, since=start - window, until=start)
    totals = funnel_total(data, current)
    sla = sla_report(data, current, now=end, speed_to_lead_hours=rules.speed_to_lead_hours)[0]
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
    notes = {
        name: why
        for name, why in (
            ("acceptance_rate", totals["notes"].get("acceptance_rate")),
            ("mql_to_sql", totals["notes"].get("mql_to_sql")),
            ("sla_compliance", sla["notes"].get("sla_compliance")),
            ("speed_to_lead_p50_hours", sla["notes"].get("speed_to_lead_p50_hours")),
            (
                "previous_mqls",
                None if inputs.previous_mqls else "no MQLs in the window before: no trend",
            ),
        )
        if why is not None
    }
    return {
        "as_of": end.isoformat(),
        "window_days": _days(window),
        "since": start.isoformat(),
        "until": end.isoformat(),
        "rules": asdict(rules),
        "inputs": {k: rounded(v) for k, v in asdict(inputs).items()},
        "input_notes": notes,
        "alerts": [asdict(a) for a in alerts],
        "score": score.score,
        "components": [{k: rounded(v) for k, v in asdict(c).items()} for c in score.components],
        "formula": "100 × Σ(weight × min(1, value/target)) ÷ Σ weights of components with data",
    }


def _days(span: timedelta) -> int | float:
    days = span.total_seconds() / 86400
    return int(days) if days.is_integer() else round(days, 6)


# --------------------------------------------------------------------------- reps & queues


def open_mqls(
    data: ReportSource,
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
               CASE WHEN e.imported AND e.first_touch_at IS NULL THEN 'not tracked'
                    WHEN e.first_touch_at IS NOT NULL AND e.first_touch_at <= {due} THEN 'met'
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
    ("new_leads", "New leads", "leads"),
    ("leads_became_mql", "Leads that became MQL", "leads"),
    ("mqls", "MQL entries", "MQLs"),
    ("sal", "SAL", "MQLs"),
    ("sql", "SQL", "MQLs"),
    ("opportunities", "Opportunities", "MQLs"),
    ("customers", "Customers", "MQLs"),
)


def funnel_steps(total: dict[str, Any]) -> list[dict[str, Any]]:
    """The funnel as steps with the conversion from the previous step of the same unit:
    leads → leads that became MQL (the MQL rate), then MQL entries (re-qualified leads count
    again) → SAL → SQL → opportunity → customer, each a share of the step before. A step
    the data cannot know (no SQL stage) is "—" and the next one converts from the last
    known step."""
    steps = []
    previous: Any = None
    notes = total.get("notes") or {}
    for key, label, unit in FUNNEL_STEPS:
        value = total.get(key)
        note = notes.get(key)
        if key == "new_leads" or key == "mqls":
            conversion = None  # a new unit starts: leads, then MQL entries
        elif key == "leads_became_mql":
            conversion = total.get("mql_rate")
        else:
            conversion = rate(value, previous) if value is not None else None
        steps.append(
            {
                "step": key,
                "label": label,
                "unit": unit,
                "count": value,
                "conversion": rounded(conversion),
                "note": note,
            }
        )
        if value is not None:
            previous = value
    return steps


def overview(
    data: ReportSource, filters: Filters, rules: HealthRules, *, now: datetime
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


def dimension_values(data: ReportSource, dimension: str) -> list[str]:
    """Distinct values of a breakdown (for filter drop-downs)."""
    dim = check_dimension(dimension)
    if dim is None or dim in ("cohort", "week"):
        return []
    key = DIMENSIONS[dim][0]
    sql = f"SELECT DISTINCT {key} AS v FROM entries WHERE {key} IS NOT NULL ORDER BY 1"
    return [str(r["v"]) for r in fetch_rows(data, sql, {})]
