"""Human-readable renderings of outbox payloads: Slack incoming-webhook messages and e-mail.

The payload's ``data`` carries everything (who, why, top contributions, SLA deadline), so a
message can be rendered at delivery time with the public URL of the person page.
"""

from __future__ import annotations

from typing import Any

TITLES = {
    "mql.assigned": "New MQL",
    "sla.breached": "SLA breached",
    "person.stage_changed": "Stage changed",
}


def person_url(base_url: str, person_id: Any) -> str:
    return f"{base_url.rstrip('/')}/persons/{person_id}"


def _who(person: dict[str, Any]) -> str:
    name = person.get("name") or person.get("email") or f"person {person.get('id')}"
    extra = [v for v in (person.get("title"), person.get("company"), person.get("country")) if v]
    return name + (f" ({', '.join(str(v) for v in extra)})" if extra else "")


def summary_lines(payload: dict[str, Any]) -> list[str]:
    data = payload.get("data", {})
    person = data.get("person", {})
    lines = [f"{TITLES.get(payload.get('type', ''), payload.get('type', ''))}: {_who(person)}"]
    if data.get("from_stage") or data.get("to_stage"):
        lines.append(
            f"Stage: {data.get('from_stage')} → {data.get('to_stage')} ({data.get('reason')})"
        )
    if data.get("mql_type"):
        score = data.get("score") or {}
        lines.append(
            f"Why: {data['mql_type']} — fit {score.get('fit', 0):g}, "
            f"intent {score.get('intent', 0):g}, total {score.get('total', 0):g}"
        )
    top = data.get("top_contributions") or []
    if top:
        lines.append("Top signals: " + ", ".join(f"{c['rule']} +{c['points']:g}" for c in top))
    assignment = data.get("assignment") or {}
    if assignment:
        rep = assignment.get("rep") or {}
        owner = rep.get("name") or rep.get("key") or f"queue {assignment.get('team')}"
        lines.append(f"Owner: {owner} (team {assignment.get('team')}; {assignment.get('reason')})")
    sla = data.get("sla") or {}
    if sla.get("due_at"):
        lines.append(f"First touch due: {sla['due_at']} ({sla.get('policy')})")
    breach = data.get("breach") or {}
    if breach:
        lines.append(
            f"Deadline {breach.get('due_at')} passed; "
            f"actions: {', '.join(breach.get('actions', [])) or 'none'}"
        )
    return lines


def slack_message(payload: dict[str, Any], base_url: str) -> dict[str, Any]:
    lines = summary_lines(payload)
    person_id = (payload.get("data", {}).get("person") or {}).get("id")
    link = person_url(base_url, person_id)
    text = f"*{lines[0]}*\n" + "\n".join(lines[1:]) + f"\n<{link}|Open person page>"
    return {
        "text": lines[0],
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"id `{payload.get('id')}`"}],
            },
        ],
    }


def email_text(payload: dict[str, Any], base_url: str) -> tuple[str, str]:
    lines = summary_lines(payload)
    person_id = (payload.get("data", {}).get("person") or {}).get("id")
    body = (
        "\n".join(lines)
        + f"\n\n{person_url(base_url, person_id)}\n\nmessage id: {payload.get('id')}\n"
    )
    return lines[0], body
