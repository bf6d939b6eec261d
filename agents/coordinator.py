"""The coordinator: run the five agents in parallel, then the analyzers, then decide.

Risk score (0-100) = the sum of every agent's signed contributions, each with its reason and
evidence, clamped; severity comes from fixed bands of that score (README "Risk score").
"""

import logging
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.utils import timezone

from threats import services

from .analyzers import false_positive, response, timeline
from .registry import load_agents

log = logging.getLogger(__name__)

SEVERITY_BANDS = [(75, "CRITICAL"), (50, "HIGH"), (25, "MEDIUM"), (0, "LOW")]
AGENT_TIMEOUT_SECONDS = 30
LOW_CONFIDENCE = 0.5

_agents = None
_pool = None


@dataclass
class Verdict:
    """Everything the coordinator decided about one threat."""

    severity: str
    risk_score: int
    risk_factors: list
    confidence: float
    executive_summary: str
    mitre: dict
    false_positive: dict
    response_plan: dict
    timeline: list
    requires_human_review: bool
    review_reasons: list
    processing_ms: int
    analyzed_at: object
    agent_runs: list = field(default_factory=list)

    def threat_fields(self):
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "agent_runs"}


def analyze(threat_id):
    """Analyse one stored threat; a no-op when it is gone or already analysed."""
    threat = services.start_analysis(threat_id)
    if threat is None:
        return None
    try:
        return services.do_record_analysis(threat, decide(threat))
    except Exception as exc:
        # Never leave a threat "running": record the failure (visible, and retried by the next run).
        services.do_fail_analysis(threat.pk, exc)
        raise


def decide(threat):
    started_at, clock = timezone.now(), time.perf_counter()
    agents = _load()
    gathered = {agent.kind: agent.gather(threat) for agent in agents}
    futures = {agent.kind: _executor().submit(_run_agent, agent, threat, gathered[agent.kind]) for agent in agents}
    runs = {kind: future.result(timeout=AGENT_TIMEOUT_SECONDS) for kind, future in futures.items()}
    results = {kind: run.pop("result") for kind, run in runs.items() if run["status"] == "succeeded"}

    fp = false_positive.assess(threat, results)
    factors = _risk_factors(results, fp)
    risk = max(0, min(100, sum(f["points"] for f in factors)))
    severity = next(name for floor, name in SEVERITY_BANDS if risk >= floor)
    confidence = round(sum(r.confidence for r in results.values()) / max(len(results), 1), 3)
    reasons = _review_reasons(severity, confidence, fp, runs)
    decided_at = timezone.now()
    return Verdict(
        severity=severity,
        risk_score=risk,
        risk_factors=factors,
        confidence=confidence,
        executive_summary=_summary(threat, severity, risk, factors, fp),
        mitre=_mitre(results),
        false_positive=fp,
        response_plan=response.plan(threat, severity, fp["score"]),
        timeline=timeline.build(threat, list(runs.values()), started_at, decided_at, severity),
        requires_human_review=bool(reasons),
        review_reasons=reasons,
        processing_ms=round((time.perf_counter() - clock) * 1000),
        analyzed_at=decided_at,
        agent_runs=list(runs.values()),
    )


def _run_agent(agent, threat, gathered):
    started_at, clock = timezone.now(), time.perf_counter()
    run = {"kind": agent.kind, "started_at": started_at}
    try:
        result = agent.analyze(threat, gathered)
    except Exception as exc:
        log.exception("agent %s failed on threat %s", agent.kind, threat.pk)
        run.update(status="failed", error="".join(traceback.format_exception_only(exc)).strip(),
                   summary="", confidence=None, findings=[], recommendations=[], evidence=[], risk=[], data={})
    else:
        run.update(status="succeeded", error="", summary=result.summary, confidence=round(result.confidence, 3),
                   findings=result.findings, recommendations=result.recommendations,
                   evidence=result.evidence, risk=result.risk, data=result.data, result=result)
    run.update(finished_at=timezone.now(), duration_ms=round((time.perf_counter() - clock) * 1000, 3))
    return run


def _risk_factors(results, fp):
    factors = [
        {"points": item["points"], "reason": item["reason"], "agent": kind, "evidence": item["evidence"]}
        for kind, result in results.items()
        for item in result.risk
    ]
    if fp["recommendation"] == "likely_false_positive":
        factors.append({"points": -15, "reason": f"false-positive likelihood {fp['score']:.0%}",
                        "agent": "false_positive", "evidence": []})
    return factors


def _review_reasons(severity, confidence, fp, runs):
    reasons = []
    if severity == "CRITICAL":
        reasons.append("critical severity")
    if confidence < LOW_CONFIDENCE:
        reasons.append(f"low confidence ({confidence:.0%})")
    if fp["recommendation"] == "needs_review" and severity in ("HIGH", "CRITICAL"):
        reasons.append(f"{severity.lower()} severity but false-positive likelihood {fp['score']:.0%}")
    failed = [kind for kind, run in runs.items() if run["status"] == "failed"]
    if failed:
        reasons.append(f"agent(s) failed: {', '.join(failed)}")
    return reasons


def _mitre(results):
    data = results["priority"].data if "priority" in results else {}
    return {"attack_source": data.get("attack_source", ""), "techniques": data.get("techniques", [])}


def _summary(threat, severity, risk, factors, fp):
    top = sorted((f for f in factors if f["points"] > 0), key=lambda f: -f["points"])[:3]
    drivers = "; ".join(f["reason"] for f in top) or "no aggravating factor"
    return (
        f"{severity} {threat.threat_type.replace('_', ' ')} for {threat.customer.name} "
        f"(risk {risk}/100): {drivers}. False-positive likelihood {fp['score']:.0%}."
    )


def _load():
    global _agents
    if _agents is None:
        _agents = load_agents()
    return _agents


def _executor():
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=5, thread_name_prefix="agent")
    return _pool
