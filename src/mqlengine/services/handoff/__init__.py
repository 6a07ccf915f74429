"""The handoff: routes new MQLs, keeps the SLA clock, records touches and breaches, and
writes the outbox rows — always on the caller's transaction.

The domain (:mod:`mqlengine.domain.routing`, :mod:`mqlengine.domain.sla`) decides; these
modules load its inputs and persist its decisions, one concern each:

- :mod:`.directory` the reps and teams as routing values (read once per transaction);
- :mod:`.reads` the routing state a decision reads (all of it, or only what one rule needs);
- :mod:`.hook` what a stage change sets off (called by
  :func:`mqlengine.services.qualify.apply_stage_change`);
- :mod:`.assign` routing one MQL and recording its assignment;
- :mod:`.sla` touches that stop the clock, and breaches that escalate;
- :mod:`.payloads` the notification payloads they share.
"""
