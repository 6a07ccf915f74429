"""Score cards as plain data and as readable lines: what the API, CLI and store keep."""

from __future__ import annotations

from typing import Any

from mqlengine.domain.scoring import Contribution, ScoreCard


def _r(value: float) -> float:
    return round(value, 4)


def contribution_to_dict(item: Contribution, *, with_hits: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "rule": item.rule_id,
        "kind": item.kind,
        "raw_points": _r(item.raw_points),
        "earned": _r(item.earned),
        "points": _r(item.points),
        "capped": item.points != item.earned,
        "decay_factor": _r(item.decay_factor),
    }
    if with_hits and item.hits:
        data["events"] = [
            {
                "event_id": hit.event_id,
                "timestamp": hit.timestamp.isoformat(),
                "age_days": _r(hit.age_days),
                "decay_factor": _r(hit.decay_factor),
                "points": _r(hit.points),
            }
            for hit in item.hits
        ]
    return data


def card_to_dict(card: ScoreCard, *, with_hits: bool = True) -> dict[str, Any]:
    """JSON-ready score card. Sums: fit = Σ fit points + fit_cap_adjustment, etc.
    With a live model: ``likelihood`` (its version and top signed contributions)."""
    data: dict[str, Any] = {
        "definition_version": card.definition_version,
        "as_of": card.as_of.isoformat(),
        "fit": _r(card.fit),
        "intent": _r(card.intent),
        "total": _r(card.total),
        "fit_cap_adjustment": _r(card.fit_cap_adjustment),
        "intent_cap_adjustment": _r(card.intent_cap_adjustment),
        "total_cap_adjustment": _r(card.total_cap_adjustment),
        "threshold": card.threshold,
        "min_fit": card.min_fit,
        "distance_to_threshold": _r(card.distance_to_threshold),
        "meets_threshold": card.meets_threshold,
        "qualifies": card.qualifies,
        "retains": card.retains,
        "mql_type": card.mql_type,
        "matched_path": card.matched_path,
        "excluded_because": list(card.excluded_because),
        "missing_requirements": list(card.missing_requirements),
        "contributions": [contribution_to_dict(c, with_hits=with_hits) for c in card.contributions],
    }
    if card.likelihood is not None:
        data["likelihood"] = likelihood_to_dict(card)
    return data


def likelihood_to_dict(card: ScoreCard) -> dict[str, Any] | None:
    """The model's part of a card: P(outcome), the model version, top contributions."""
    if card.likelihood is None:
        return None
    return {
        "value": _r(card.likelihood),
        "model_version": card.model_version,
        "top": [
            {"feature": name, "contribution": _r(value)} for name, value in card.likelihood_top
        ],
    }


def rule_points(card: ScoreCard) -> dict[str, float]:
    return {c.rule_id: _r(c.points) for c in card.contributions}


def explain_lines(card: ScoreCard) -> list[str]:
    """A plain-text breakdown whose lines add up to the total."""
    lines = [f"definition {card.definition_version}, as of {card.as_of.isoformat()}"]
    for kind, total, adjustment in (
        ("fit", card.fit, card.fit_cap_adjustment),
        ("intent", card.intent, card.intent_cap_adjustment),
    ):
        lines.append(f"{kind}: {total:.2f}")
        for item in card.contributions:
            if item.kind != kind:
                continue
            detail = ""
            if item.hits:
                detail = f" from {len(item.hits)} event(s), mean decay {item.decay_factor:.2f}"
                if item.points != item.earned:
                    detail += f", rule cap {item.earned:+.2f} → {item.points:+.2f}"
            lines.append(f"  {item.points:+8.2f}  {item.rule_id}{detail}")
        if adjustment:
            lines.append(f"  {adjustment:+8.2f}  ({kind} cap)")
    if card.total_cap_adjustment:
        lines.append(f"  {card.total_cap_adjustment:+8.2f}  (total cap)")
    lines.append(
        f"total: {card.total:.2f} (threshold {card.threshold:g}, min fit {card.min_fit:g})"
    )
    if card.excluded_because:
        lines.append("excluded because: " + ", ".join(card.excluded_because))
    if card.missing_requirements:
        lines.append("missing requirements: " + ", ".join(card.missing_requirements))
    if card.likelihood is not None:
        lines.append(f"likelihood: {card.likelihood:.3f} (model v{card.model_version})")
        for name, value in card.likelihood_top:
            lines.append(f"  {value:+8.3f}  {name}")
    verdict = f"MQL ({card.mql_type})" if card.qualifies else "not an MQL"
    lines.append(f"decision: {verdict}")
    return lines


def why_not_mql(card: ScoreCard) -> str | None:
    """Why a lead is not an MQL, in one short phrase (None when it qualifies): the
    exclusions that hold it back, the requirements it misses, or the points it is short."""
    if card.qualifies:
        return None
    if card.excluded_because:
        return "excluded: " + ", ".join(card.excluded_because)
    if card.missing_requirements:
        return "missing: " + ", ".join(card.missing_requirements)
    if not card.meets_threshold:
        return f"{card.distance_to_threshold:,.1f} points short"
    if card.fit < card.min_fit:
        return f"fit {card.fit:,.1f} below {card.min_fit:,.1f}"
    return "no MQL path matched"
