"""Parse → validate → compile: ``mql.yaml`` text to a frozen :class:`Definition`.

Every problem is reported as ``file:line:col: what is wrong``; warnings (legal but probably
unintended, e.g. an unreachable threshold) are returned separately and never block.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import pydantic

from mqlengine.definition.handoff import compile_handoff
from mqlengine.definition.schema import (
    AllCondition,
    AnyCondition,
    DefinitionSpec,
    LeafCondition,
    NotCondition,
)
from mqlengine.definition.yamlsource import Path, SourceMap, YamlProblem, load_yaml
from mqlengine.domain.conditions import (
    AllOf,
    AnyOf,
    Compare,
    Condition,
    EventSeen,
    Not,
    Op,
    RuleEarned,
    ScoreAtLeast,
    ScoreField,
    Subject,
    make_compare,
)
from mqlengine.domain.consent import ConsentPolicy
from mqlengine.domain.rules import (
    VALIDATION_CHECKS,
    CheckAction,
    Definition,
    FitRule,
    Gate,
    IdentityPolicy,
    IntentRule,
    PredictConfig,
    Qualify,
    QualifyPath,
    Repeat,
    ValidationPolicy,
)
from mqlengine.domain.wording import explain_invalid
from mqlengine.errors import DefinitionError

SpecCondition = AllCondition | AnyCondition | NotCondition | LeafCondition


@dataclass(frozen=True)
class LoadedDefinition:
    definition: Definition
    spec: DefinitionSpec
    text: str
    filename: str
    warnings: tuple[str, ...]


def _resolve(loc: tuple[int | str, ...], data: Any) -> Path:
    """Turn a pydantic error location into a path through the real data (drops union tags)."""
    path: list[str | int] = []
    current = data
    for part in loc:
        key: str | int = "in" if part == "in_" else "not" if part == "not_" else part
        if isinstance(current, dict) and key in current:
            current = current[key]
            path.append(key)
        elif isinstance(current, list) and isinstance(key, int) and 0 <= key < len(current):
            current = current[key]
            path.append(key)
        elif (
            isinstance(current, dict)
            and isinstance(key, str)
            and key
            not in (
                "all",
                "any",
                "not",
                "leaf",
            )
        ):
            path.append(key)  # a key that should exist (or must not): point at its parent
            break
    return tuple(path)


def _message(error: Any, path: Path) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key '{path[-1] if path else '?'}'"
    if kind == "missing":
        name = error["loc"][-1]
        if isinstance(name, int):  # a fixed-length list such as between: [low, high]
            where = ".".join(str(p) for p in path) or "document"
            return f"{where}: too few items (item {name + 1} is missing)"
        return f"missing required key '{name}'"
    message = explain_invalid(error)
    where = ".".join(str(p) for p in path) or "document"
    return f"{where}: {message}"


def _diagnostics(exc: pydantic.ValidationError, data: Any, source: SourceMap) -> list[str]:
    seen: set[str] = set()
    result: list[str] = []
    for error in exc.errors():
        path = _resolve(tuple(error["loc"]), data)
        line = f"{source.where(path)}: {_message(error, path)}"
        if line not in seen:
            seen.add(line)
            result.append(line)
    return result


class _Compiler:
    def __init__(self, spec: DefinitionSpec, source: SourceMap) -> None:
        self.spec = spec
        self.source = source
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, path: Path, message: str) -> None:
        self.errors.append(f"{self.source.where(path)}: {message}")

    def warn(self, path: Path, message: str) -> None:
        self.warnings.append(f"{self.source.where(path)}: warning: {message}")

    def likely_mistakes(self) -> None:
        """Warnings for what is valid but almost certainly a mistake."""
        spec = self.spec
        if spec.qualify.threshold < 0:
            self.warn(
                ("qualify", "threshold"),
                f"threshold {spec.qualify.threshold:g} is negative: every lead qualifies",
            )
        for kind in ("reject", "recycle", "disqualify", "lost"):
            codes: list[str] = getattr(spec.reasons, kind)
            for index, code in enumerate(codes):
                if code in codes[:index]:
                    self.warn(("reasons", kind, index), f"duplicate reason code '{code}'")
        exclusions = {g.id for g in spec.exclude}
        requirements = {g.id for g in spec.require}
        for index, test in enumerate(spec.tests):
            expect = test.expect
            for field, known, what in (
                ("excluded_because", exclusions, "exclusion"),
                ("missing", requirements, "requirement"),
            ):
                for gate in getattr(expect, field) or []:
                    if gate not in known:
                        self.warn(
                            ("tests", index, "expect", field),
                            f"test '{test.name}' expects {what} '{gate}', which the "
                            f"definition does not have",
                        )

    def condition(self, spec: SpecCondition, path: Path, allowed: set[str]) -> Condition:
        if isinstance(spec, AllCondition):
            return AllOf(
                tuple(self.condition(c, (*path, "all", i), allowed) for i, c in enumerate(spec.all))
            )
        if isinstance(spec, AnyCondition):
            return AnyOf(
                tuple(self.condition(c, (*path, "any", i), allowed) for i, c in enumerate(spec.any))
            )
        if isinstance(spec, NotCondition):
            return Not(self.condition(spec.not_, (*path, "not"), allowed))
        subject = spec.subject_key()
        if subject not in allowed:
            self.error(
                path,
                f"'{subject}' conditions are not allowed here "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
        if subject in ("trait", "property"):
            op = Op(spec.operator_key())
            value = getattr(spec, "in_" if op is Op.IN else op.value)
            if op in (Op.IN, Op.NOT_IN, Op.BETWEEN):
                value = tuple(value)
            pattern = re.compile(value) if op is Op.REGEX else None
            name = spec.trait if subject == "trait" else spec.property
            assert name is not None
            return make_compare(Subject(subject), name, op, value, pattern)
        if subject == "rule":
            assert spec.rule is not None
            return RuleEarned(spec.rule)
        if subject == "event":
            assert spec.event is not None
            return EventSeen(spec.event, spec.within_days)
        field_name = subject.removesuffix("_at_least")
        minimum = getattr(spec, subject)
        return ScoreAtLeast(ScoreField(field_name), float(minimum))

    def compile(self, content_hash: str) -> Definition:
        spec = self.spec
        seen_ids: dict[str, Path] = {}

        def unique(rule_id: str, path: Path, kind: str) -> None:
            if rule_id in seen_ids:
                self.error(
                    (*path, "id"),
                    f"duplicate {kind} id '{rule_id}' "
                    f"(first at {self.source.where(seen_ids[rule_id])})",
                )
            else:
                seen_ids[rule_id] = (*path, "id")

        fit_rules = []
        path: Path
        for i, f in enumerate(spec.fit.rules):
            path = ("fit", "rules", i)
            unique(f.id, path, "rule")
            when = self.condition(f.when, (*path, "when"), {"trait"})
            fit_rules.append(FitRule(f.id, when, f.points, f.description))
        intent_rules = []
        for i, r in enumerate(spec.intent.rules):
            path = ("intent", "rules", i)
            unique(r.id, path, "rule")
            where = None
            if r.where is not None:
                where = self.condition(r.where, (*path, "where"), {"property"})
            if r.cap is not None and abs(r.points) > r.cap:
                self.warn((*path, "cap"), f"cap {r.cap:g} is below one occurrence ({r.points:g})")
            intent_rules.append(
                IntentRule(
                    r.id,
                    r.event,
                    r.points,
                    where,
                    Repeat(r.repeat),
                    r.cap,
                    r.half_life_days,
                    r.within_days,
                    r.description,
                )
            )
        gate_ids: dict[str, Path] = {}
        exclusions: list[Gate] = []
        requirements: list[Gate] = []
        for section, target in (("exclude", exclusions), ("require", requirements)):
            for i, g in enumerate(getattr(spec, section)):
                path = (section, i)
                if g.id in gate_ids:
                    self.error((*path, "id"), f"duplicate {section} id '{g.id}'")
                gate_ids[g.id] = path
                target.append(
                    Gate(g.id, self.condition(g.when, (*path, "when"), {"trait"}), g.description)
                )

        rule_ids = set(seen_ids)
        paths = []
        path_types: set[str] = set()
        allowed_in_paths = {
            "trait",
            "rule",
            "event",
            "fit_at_least",
            "intent_at_least",
            "total_at_least",
            "likelihood_at_least",
        }
        for i, p in enumerate(spec.qualify.paths):
            path = ("qualify", "paths", i)
            if p.type in path_types:
                self.error((*path, "type"), f"duplicate path type '{p.type}'")
            path_types.add(p.type)
            condition = self.condition(p.when, (*path, "when"), allowed_in_paths)
            for rule_ref in _rule_refs(condition):
                if rule_ref not in rule_ids:
                    self.error((*path, "when"), f"path refers to unknown rule '{rule_ref}'")
            paths.append(QualifyPath(p.type, condition, p.bypass_threshold))

        q = spec.qualify
        best_fit = sum(max(r.points, 0) for r in spec.fit.rules)
        if spec.fit.cap is not None:
            best_fit = min(best_fit, spec.fit.cap)
        if q.min_fit > best_fit:
            self.error(
                ("qualify", "min_fit"),
                f"min_fit {q.min_fit:g} is above the best possible fit {best_fit:g}",
            )
        if q.hysteresis > q.threshold:
            self.warn(("qualify", "hysteresis"), "hysteresis is larger than the threshold")
        if spec.intent.cap is not None and spec.fit.cap is not None:
            best = spec.fit.cap + spec.intent.cap
            if q.total_cap is not None:
                best = min(best, q.total_cap)
            if best < q.threshold:
                self.error(
                    ("qualify", "threshold"),
                    f"threshold {q.threshold:g} can never be reached "
                    f"(fit cap + intent cap = {best:g})",
                )
        if spec.predict.label.reached not in spec.stages:
            self.error(
                ("predict", "label", "reached"),
                f"stage '{spec.predict.label.reached}' is not among the definition's stages",
            )
        routing, sla = compile_handoff(self, spec, rule_ids, {*path_types, q.default_type})
        self.likely_mistakes()
        if self.errors:
            raise DefinitionError(
                f"{len(self.errors)} problem(s) in {self.source.filename}", diagnostics=self.errors
            )
        return Definition(
            version=spec.version,
            description=spec.description,
            content_hash=content_hash,
            half_life_days=spec.decay.half_life_days,
            fit_rules=tuple(fit_rules),
            fit_cap=spec.fit.cap,
            intent_rules=tuple(intent_rules),
            intent_cap=spec.intent.cap,
            exclusions=tuple(exclusions),
            requirements=tuple(requirements),
            qualify=Qualify(
                threshold=q.threshold,
                min_fit=q.min_fit,
                hysteresis=q.hysteresis,
                total_cap=q.total_cap,
                recycle_cooldown_days=q.recycle_cooldown_days,
                paths=tuple(paths),
                default_type=q.default_type,
                min_likelihood=q.min_likelihood,
            ),
            stages=tuple(spec.stages),
            reasons={
                "reject": tuple(spec.reasons.reject),
                "recycle": tuple(spec.reasons.recycle),
                "disqualify": tuple(spec.reasons.disqualify),
                "lost": tuple(spec.reasons.lost),
            },
            validation=ValidationPolicy(
                checks=tuple(
                    (name, CheckAction(getattr(spec.validation, name)))
                    for name in VALIDATION_CHECKS
                ),
                honeypot_fields=tuple(spec.validation.honeypot_fields),
                min_form_seconds=spec.validation.min_form_seconds,
            ),
            identity=IdentityPolicy(gmail_normalize=spec.identity.gmail_normalize),
            consent=ConsentPolicy(
                tracking_trait=spec.consent.tracking_trait,
                marketing_trait=spec.consent.marketing_trait,
                tracking_categories=tuple(spec.consent.tracking_categories),
                marketing_categories=tuple(spec.consent.marketing_categories),
                honor_do_not_track=spec.consent.honor_do_not_track,
                honor_global_privacy_control=spec.consent.honor_global_privacy_control,
                keep_properties=tuple(spec.consent.keep_properties),
            ),
            routing=routing,
            sla=sla,
            predict=PredictConfig(
                label_reached=spec.predict.label.reached,
                within_days=spec.predict.label.within_days,
                label_from=spec.predict.label.from_,
                min_rows=spec.predict.min_rows,
                traits=tuple(spec.predict.traits),
                shadow=spec.predict.shadow,
                drift_warn_psi=spec.predict.drift_warn_psi,
                drift_window_days=spec.predict.drift_window_days,
            ),
        )


def condition_names(condition: Condition | None) -> tuple[set[str], set[str]]:
    """The trait names and event names a condition reads (``{trait: …}``, ``{event: …}``)."""
    traits: set[str] = set()
    names: set[str] = set()
    if isinstance(condition, Compare) and condition.subject is Subject.TRAIT:
        traits.add(condition.name)
    elif isinstance(condition, EventSeen):
        names.add(condition.event)
    elif isinstance(condition, AllOf | AnyOf):
        for item in condition.items:
            more_traits, more_names = condition_names(item)
            traits |= more_traits
            names |= more_names
    elif isinstance(condition, Not):
        return condition_names(condition.item)
    return traits, names


def definition_names(definition: Definition) -> tuple[set[str], set[str]]:
    """Every trait and event name a definition reads: what `mql validate` looks for in
    the database."""
    traits: set[str] = set()
    names = {rule.event for rule in definition.intent_rules}
    conditions = [
        *(r.when for r in definition.fit_rules),
        *(g.when for g in (*definition.exclusions, *definition.requirements)),
        *(p.when for p in definition.qualify.paths),
    ]
    for condition in conditions:
        more_traits, more_names = condition_names(condition)
        traits |= more_traits
        names |= more_names
    return traits, names


def _rule_refs(condition: Condition) -> list[str]:
    if isinstance(condition, RuleEarned):
        return [condition.rule_id]
    if isinstance(condition, AllOf | AnyOf):
        return [ref for item in condition.items for ref in _rule_refs(item)]
    if isinstance(condition, Not):
        return _rule_refs(condition.item)
    return []


def likelihood_notes(loaded: LoadedDefinition) -> list[str]:
    """What the definition does with the predictive likelihood, in words (``mql validate``)."""
    definition = loaded.definition
    predict = definition.predict
    uses = [path.type for path in definition.qualify.paths if _reads_likelihood(path.when)]
    gate = definition.qualify.min_likelihood
    if "predict" not in loaded.spec.model_fields_set and not uses and gate is None:
        return []
    start = "becoming an MQL" if predict.label_from == "mql" else "first being seen"
    notes = [
        f"likelihood: P(reaching {predict.label_reached} or later within "
        f"{predict.within_days:g} days of {start}), learned by `mql model train` "
        f"from at least {predict.min_rows} labelled leads"
    ]
    if gate is not None:
        notes.append(
            f"  min_likelihood {gate:g}: with a live model, a lead below it does not become "
            "(or stay) an MQL"
        )
    for name in uses:
        notes.append(
            f"  path '{name}' asks for the likelihood (never matches without a live model)"
        )
    if predict.shadow:
        notes.append(
            "  shadow: the newest candidate model scores beside the live one, never deciding"
        )
    notes.append(
        "  without a live model the likelihood is unknown and decisions are the rules' alone"
    )
    return notes


def _reads_likelihood(condition: Condition) -> bool:
    if isinstance(condition, ScoreAtLeast):
        return condition.field is ScoreField.LIKELIHOOD
    if isinstance(condition, AllOf | AnyOf):
        return any(_reads_likelihood(item) for item in condition.items)
    if isinstance(condition, Not):
        return _reads_likelihood(condition.item)
    return False


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_definition(text: str, filename: str = "mql.yaml") -> LoadedDefinition:
    """Validate and compile definition text; raises :class:`DefinitionError` with diagnostics."""
    try:
        data, source = load_yaml(text, filename)
    except YamlProblem as problem:
        raise DefinitionError(
            f"{filename} is not valid YAML", diagnostics=[problem.diagnostic]
        ) from None
    if not isinstance(data, dict):
        raise DefinitionError(
            f"{filename} must be a mapping",
            diagnostics=[
                f"{filename}:1:1: expected a mapping of sections (version, fit, intent, qualify, …)"
            ],
        )
    try:
        spec = DefinitionSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        diagnostics = _diagnostics(exc, data, source)
        raise DefinitionError(
            f"{len(diagnostics)} problem(s) in {filename}", diagnostics=diagnostics
        ) from None
    compiler = _Compiler(spec, source)
    definition = compiler.compile(content_hash(text))
    return LoadedDefinition(definition, spec, text, filename, tuple(compiler.warnings))


def load_definition(path: str | FsPath) -> LoadedDefinition:
    file = FsPath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(
            f"definition file not found: {file}",
            diagnostics=[f"{file}: no such file (create one with `mql init`)"],
        ) from None
    except UnicodeDecodeError as error:
        raise DefinitionError(
            f"{file} is not UTF-8 text",
            diagnostics=[f"{file}:1:1: not UTF-8 text ({error.reason})"],
        ) from None
    return parse_definition(text, str(file))
