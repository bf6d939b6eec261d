"""The coordinator: run the five agents in parallel, then the analyzers, then decide.

Severity follows the policy of docs/verdicts.md (agents/verdict.py): the source's rating is the
prior, named rules move it with cited evidence, and every move is a risk factor. The risk score
(0-100) sits inside the band, placed by the agents' smaller signed contributions. The review flag
is the list of review rules that fire. The optional LLM only rewrites the narrative: the score,
severity and review decision are always the deterministic ones.
"""

import logging
import threading
import time
import traceback
from concurrent.futures import as_completed, wait
from dataclasses import dataclass, field

from django.utils import timezone

from socproject import telemetry
from threats import events, services
from threats.models import Threat

from . import llm, signal_model, tracing
from . import verdict as rules
from .analyzers import adversarial, false_positive, response, timeline
from .priority import attack
from .registry import load_agents

log = logging.getLogger(__name__)

AGENT_TIMEOUT_SECONDS = 30
PROGRESS_BATCH_SECONDS = 0.25
CONTRADICTION_PENALTY = 0.1
FALSE_POSITIVE_POINTS = -10
STORE_AFTER_SECONDS = 0.25  # a verdict waits at most about this long for its batch's to be stored with it

_agents = None
_pool = None
_init_lock = threading.Lock()


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
    adversarial: dict
    processing_ms: int
    analyzed_at: object
    agent_runs: list = field(default_factory=list)

    def threat_fields(self):
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "agent_runs"}


def analyze(threat_id):
    """Analyse one stored threat; a no-op (None) when it is gone or already analysed."""
    return analyze_many([threat_id])[0]


def analyze_many(threat_ids, extras=0, running_before=None, on_claim=None):
    """`analyze` for threats queued together (an ingest batch); returns the threats as stored, in
    order (None where there was nothing to do). One statement claims them all, each is decided on
    its own, and their verdicts are stored together: one transaction for the batch, or for what
    was decided within STORE_AFTER_SECONDS, so a slow batch still shows verdicts as it goes.

    `extras` and `running_before` go to the claim (`services.start_analyses`): up to `extras`
    other waiting threats are claimed in the same statement and analysed in the same batch (a
    worker's task for one threat, under a burst: agents/tasks.py); they are not in the result.
    `on_claim(extra_ids)` is called once they are claimed, before any is analysed.

    A threat that fails is recorded as failed and the others go on; the first error is raised at
    the end, so the task is retried (threats stored meanwhile are skipped then)."""
    threat_ids = list(dict.fromkeys(Threat._meta.pk.to_python(threat_id) for threat_id in threat_ids))
    asked, own = len(threat_ids), set(threat_ids)
    claimed = {threat.pk: threat for threat in services.start_analyses(threat_ids, extras, running_before)}
    taken = [threat_id for threat_id in claimed if threat_id not in own]
    if on_claim is not None:
        on_claim(taken)
    threat_ids += taken  # the extras, after
    traces = {threat_id: tracing.Analysis(threat_id) for threat_id in threat_ids}
    batch = [claimed[threat_id] for threat_id in threat_ids if threat_id in claimed]
    ahead = _gather_batch(batch)
    ran = _run_batch([threat for threat in batch if threat.pk in ahead], ahead, traces)
    decided, stored, errors = [], {}, []
    for threat_id in threat_ids:
        trace, threat = traces[threat_id], claimed.get(threat_id)
        if threat is None:
            trace.finish(None)
            continue
        try:
            with trace.current():
                verdict = decide(threat, ahead.get(threat_id), ran.get(threat_id))
        except Exception as exc:
            errors.append(_failed(threat, trace, exc))
            continue
        if not decided:
            waiting_since = time.perf_counter()
        decided.append((threat, verdict, trace))
        if time.perf_counter() - waiting_since >= STORE_AFTER_SECONDS:
            errors += _store(decided, stored)
            decided = []
    errors += _store(decided, stored)
    if errors:
        raise errors[0]
    return [stored.get(threat_id) for threat_id in threat_ids[:asked]]


def _gather_batch(threats):
    """{threat id: Gathered} for a batch's threats, each agent reading for all of them at once
    (`gather_many`: the DevOps and context agents make one read for the batch). Empty for a single
    threat, or when the batch's reads fail: every threat then reads on its own in `decide`, so a
    failure costs only the threats it touches."""
    if len(threats) < 2:
        return {}
    try:
        return {threat.pk: found for threat, found in zip(threats, gather(threats), strict=True)}
    except Exception as exc:
        log.warning("reading for %d threats together failed (%s); each reads on its own", len(threats), exc)
        return {}


def _run_batch(threats, ahead, traces):
    """{threat id: Ran} for a batch's threats: the five agents run concurrently over the batch, each
    analysing its threats one after another in ONE job on the agent pool (5 thread hand-offs per
    batch instead of 5 per threat: the waits for them were a quarter of a batched worker's time,
    measured with py-spy). Each run keeps its own threat's trace, times and result. Empty for a
    single threat; a threat that did not get all five runs (a job failed or overran
    AGENT_TIMEOUT_SECONDS) is left out, and `decide` runs its agents on their own."""
    if len(threats) < 2:
        return {}
    agents = _load()
    for threat in threats:
        events.push_progress(threat.pk, *({"agent": agent.kind, "state": "running"} for agent in agents))
    since, runs = tracing.mark(), {agent.kind: [] for agent in agents}
    jobs = [_executor().submit(_run_agent_over, agent, [(threat, ahead[threat.pk].records[agent.kind], traces[threat.pk])
                                                        for threat in threats], runs[agent.kind])
            for agent in agents]
    done, late = wait(jobs, timeout=AGENT_TIMEOUT_SECONDS)
    for job in done:
        if job.exception() is not None:
            log.warning("an agent's run over %d threats failed (%s); the rest run on their own", len(threats),
                        job.exception())
    if late:
        log.warning("%d agent(s) did not finish %d threats within %d s; the rest run on their own", len(late),
                    len(threats), AGENT_TIMEOUT_SECONDS)
    marks, finished = (since, tracing.mark()), min(len(made) for made in runs.values())
    return {threat.pk: Ran({kind: made[index] for kind, made in runs.items()}, marks, len(threats))
            for index, threat in enumerate(threats[:finished])}


def _run_agent_over(agent, work, made):
    """One agent's runs over a batch ([(threat, gathered, trace)]), appended to `made` as they finish."""
    for threat, gathered, trace in work:
        with trace.current():
            made.append(_run_agent(agent, threat, gathered))


def _store(decided, stored):
    """Store verdicts decided together ([(threat, verdict, trace)]) into `stored` (by id). If the
    database refuses the batch, each is stored on its own: one verdict it refuses costs only its
    own threat. Returns the errors."""
    if not decided:
        return []
    since = tracing.mark()
    try:
        threats = services.do_record_analyses([(threat, verdict) for threat, verdict, _trace in decided])
    except Exception as exc:
        if len(decided) == 1:
            return [_failed(decided[0][0], decided[0][2], exc)]
        log.warning("storing %d verdicts together failed (%s); storing them one by one", len(decided), exc)
        return [error for one in decided for error in _store([one], stored)]
    store = (since, tracing.mark())
    for (_threat, _verdict, trace), threat in zip(decided, threats, strict=True):
        trace.finish(threat, store)
        if threat is not None:
            stored[threat.pk] = threat
    return []


def _failed(threat, trace, exc):
    """Never leave a threat "running": record the failure (visible, and retried by the next run)."""
    log.warning("analysis of threat %s failed: %s", threat.pk, exc, exc_info=exc)
    try:
        services.do_fail_analysis(threat.pk, exc)
    except Exception:
        log.exception("recording the failed analysis of threat %s failed too", threat.pk)
    trace.finish(None, error=exc)
    return exc


@dataclass
class Gathered:
    """What the agents' `gather()` read for one threat (by agent kind), and when: for a batch, the
    one read of all its threats (`share` of them)."""

    records: dict
    started_at: object
    finished_at: object
    marks: tuple  # tracing.mark() at start and end
    share: int = 1


@dataclass
class Ran:
    """One threat's agent runs (by kind), made over a batch (`share` threats) from `marks[0]` to `marks[1]`."""

    runs: dict
    marks: tuple
    share: int


def gather(threats):
    """Every agent's stored records for each of `threats`, in order: the database part of an analysis."""
    started_at, since = timezone.now(), tracing.mark()
    for threat in threats:
        signal_model.model(threat)  # once, here: the agents' threads then share it
    found = {agent.kind: agent.gather_many(threats) for agent in _load()}
    finished_at, until = timezone.now(), tracing.mark()
    return [Gathered({kind: records[index] for kind, records in found.items()}, started_at, finished_at,
                     (since, until), len(threats)) for index in range(len(threats))]


def decide(threat, found=None, ran=None):
    """The verdict on a claimed threat, from what `gather` read for it (read now when not given)
    and its agents' runs over the batch (`_run_batch`; run now when not given)."""
    found = found or gather([threat])[0]
    tick, (since, until) = time.perf_counter(), found.marks
    clock, agents, gathered = timeline.Clock(), _load(), found.records
    clock.mark(found.started_at, "analysis_started", "Analysis started")
    clock.mark(found.finished_at, "context_gathered", _gathered_title(gathered)
               + (f"; one read for a batch of {found.share}" if found.share > 1 else ""))
    tracing.step("gather", since, until)
    if ran is None:
        events.push_progress(threat.pk, *({"agent": agent.kind, "state": "running"} for agent in agents))
        futures = {agent.kind: _executor().submit(_run_agent, agent, threat, gathered[agent.kind]) for agent in agents}
        runs, ran_for = _collect(threat, futures), 0
        tracing.step("agents")
    else:
        runs, ran_for = ran.runs, (ran.marks[1][0] - ran.marks[0][0]) / ran.share
        _push_finished(threat, list(runs.values()))
        tracing.step("agents", *ran.marks)
    results = {kind: run.pop("result") for kind, run in runs.items() if run["status"] == "succeeded"}

    scan = adversarial.scan(threat, results)
    tracing.step("adversarial")
    clock.mark(timezone.now(), "adversarial_scanned", scan["summary"])
    fp = false_positive.assess(threat, results, scan)
    tracing.step("false_positive")
    clock.mark(timezone.now(), "false_positive_assessed",
               f"False-positive assessment: {fp['recommendation'].replace('_', ' ')} ({fp['score']:.0%} FP, "
               f"{fp['benign_score']:.0%} benign)")
    priority = results["priority"].data if "priority" in results else {}
    attack_evidence = priority.get("attack_evidence", [])
    severity, moves = rules.severity(threat, fp, attack_evidence, {kind: r.data for kind, r in results.items()}, scan)
    fp = false_positive.disproven(fp, moves, scan["detected"])
    denied = bool(results["context"].data.get("denying_by_entity")) if "context" in results else False
    fp = false_positive.routine(fp, threat, severity, attack_evidence, scan["detected"], denied)
    adjustments = _set_aside(_risk_factors(results, fp), scan) + _adversarial_factors(scan)
    risk, factors = rules.risk_score(severity, adjustments), moves + adjustments
    confidence = _confidence(results, scan)
    reasons = rules.review_reasons(threat, severity, fp, scan, runs, attack_evidence, priority.get("techniques", []),
                                     results["historical"].data if "historical" in results else {}, moves)
    plan = response.plan(threat, severity, fp, scan)
    tracing.step("response")
    clock.mark(timezone.now(), "response_planned",
               f"Response planned: {len(plan['actions'])} action(s), SLA {plan['sla_minutes']} min")
    decided_at = timezone.now()
    clock.mark(decided_at, "decision", f"Severity decided: {severity} (risk {risk}/100)"
               + (f"; human review: {len(reasons)} reason(s)" if reasons else ""))
    verdict = Verdict(
        severity=severity, risk_score=risk, risk_factors=factors, confidence=confidence,
        executive_summary=_summary(threat, severity, risk, confidence, factors, fp, results, reasons),
        mitre=_mitre(results), false_positive=fp, response_plan=plan, timeline=[],
        requires_human_review=bool(reasons), review_reasons=reasons, adversarial=scan,
        processing_ms=0, analyzed_at=decided_at, agent_runs=list(runs.values()),
    )
    if llm.enabled():
        _narrate(threat, verdict, clock)
        tracing.step("narrative")
    verdict.timeline = timeline.build(threat, verdict.agent_runs, clock)
    tracing.step("timeline")
    # Its share of the batch's reads and agent runs, then the rest.
    verdict.processing_ms = round(((until[0] - since[0]) / found.share + ran_for + time.perf_counter() - tick) * 1000)
    return verdict


@tracing.traced_agent
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
        result.data["narrative"] = {"source": "deterministic", "text": result.summary}
        run.update(status="succeeded", error="", summary=result.summary, confidence=round(result.confidence, 3),
                   findings=result.findings, recommendations=result.recommendations,
                   evidence=result.evidence, risk=result.risk, data=result.data, result=result)
    run.update(finished_at=timezone.now(), duration_ms=round((time.perf_counter() - clock) * 1000, 3))
    return run


def _collect(threat, futures):
    """Every agent's run, by kind. Agents that finish within PROGRESS_BATCH_SECONDS are reported to
    watching sockets together (one push, instead of a cross-thread wake-up per agent: a third of
    the agent threads' CPU, measured); a slower agent is reported when it finishes."""
    done, pending = wait(futures.values(), timeout=PROGRESS_BATCH_SECONDS)
    _push_finished(threat, [future.result() for future in futures.values() if future in done])
    for future in as_completed(pending, timeout=AGENT_TIMEOUT_SECONDS - PROGRESS_BATCH_SECONDS):
        _push_finished(threat, [future.result()])
    return {kind: future.result() for kind, future in futures.items()}


def _push_finished(threat, runs):
    if runs:
        events.push_progress(threat.pk, *({"agent": run["kind"], "state": run["status"], "confidence": run["confidence"],
                                           "duration_ms": run["duration_ms"]} for run in runs))


def _risk_factors(results, fp):
    factors = [
        {"kind": "adjustment", "points": item["points"], "reason": item["reason"], "agent": kind,
         "evidence": item["evidence"]}
        for kind, result in results.items()
        for item in result.risk
    ]
    if fp["recommendation"] == "likely_false_positive":
        factors.append({"kind": "adjustment", "points": FALSE_POSITIVE_POINTS,
                        "reason": f"false-positive likelihood {fp['score']:.0%}",
                        "agent": "false_positive",
                        "evidence": list(dict.fromkeys(e for i in fp["indicators"] for e in i["evidence"]))})
    return factors


def _set_aside(factors, scan):
    """When an agent's explanation is contradicted by attack evidence, its exculpatory points are
    listed at 0 (with what they were): disagreement goes to a human instead of being averaged away."""
    contradicted = {kind for c in scan["contradictions"] for kind in c["agents"] if kind not in ("priority", "adversarial")}
    for factor in factors:
        if factor["agent"] in contradicted and factor["points"] < 0:
            factor["set_aside"] = factor["points"]
            factor["points"] = 0
            factor["reason"] += " (set aside: contradicted by attack evidence, see review reasons)"
    return factors


def _adversarial_factors(scan):
    return [{**factor, "kind": "adjustment", "agent": "adversarial"} for factor in scan["factors"]]


def _confidence(results, scan):
    """Mean agent confidence, lowered for every contradiction between agents (they cannot all be right)."""
    mean = sum(r.confidence for r in results.values()) / max(len(results), 1)
    return round(max(0.05, mean - CONTRADICTION_PENALTY * len(scan["contradictions"])), 3)


def _mitre(results):
    data = results["priority"].data if "priority" in results else {}
    techniques = data.get("techniques", [])
    tactics = {}
    for technique in techniques:
        for tactic_id, name in zip(technique["tactic_ids"], technique["tactics"]):
            tactics.setdefault(tactic_id, {"id": tactic_id, "name": name, "techniques": []})
            tactics[tactic_id]["techniques"].append(technique["technique_id"])
    for hint in data.get("tactic_hints", []):
        entry = tactics.setdefault(hint["id"], {"id": hint["id"], "name": hint["name"], "techniques": []})
        if hint["legacy_name"]:
            entry["legacy_name"] = hint["legacy_name"]
    return {
        "attack_version": attack.version(),
        "domain": attack.catalog()["domain"],
        "attack_source": attack.SOURCE,
        "techniques": techniques,
        "tactics": sorted(tactics.values(), key=lambda t: t["id"]),
        "context": data.get("context", {}),
        "notice": attack.notice(),
    }


def _summary(threat, severity, risk, confidence, factors, fp, results, reasons):
    family = signal_model.family(threat)
    label = threat.type_label if family == threat.threat_type else f"{threat.threat_type} ({family.replace('_', ' ')})"
    moves = [f for f in factors if f.get("kind") in ("prior", "cap", "floor", "step")]
    raised = sorted((f for f in factors if f.get("kind") == "adjustment" and f["points"] > 0), key=lambda f: -f["points"])
    techniques = results["priority"].data.get("techniques", [])[:3] if "priority" in results else []
    text = (f"{severity} {label} for {threat.customer.name} (risk {risk}/100, confidence {confidence:.0%}). "
            f"Severity: {'; then '.join(f['reason'] for f in moves)}.")
    if raised:
        text += f" Within the band: {'; '.join(f['reason'] for f in raised[:3])}."
    if techniques:
        text += f" ATT&CK: {', '.join(t['technique_id'] + ' ' + t['name'] for t in techniques)}."
    text += f" Assessment: {fp['recommendation'].replace('_', ' ')} ({fp['score']:.0%} FP, {fp['benign_score']:.0%} benign)."
    if reasons:
        text += f" Needs a human: {'; '.join(reasons)}."
    return text


def _narrate(threat, verdict, clock):
    """Ask the LLM for a narrative; on any failure the deterministic one stands and says so."""
    clock.mark(timezone.now(), "narrative_requested", f"LLM narrative requested ({llm.model_name()})")
    try:
        narrative = llm.narrate(threat, verdict)
    except llm.LLMError as exc:
        clock.mark(timezone.now(), "narrative_failed", f"LLM narrative failed ({exc}); deterministic narrative kept")
        for run in verdict.agent_runs:
            if run["status"] == "succeeded":
                run["data"]["narrative"]["llm_error"] = str(exc)
        return
    clock.mark(timezone.now(), "narrative_written", f"LLM narrative written in {narrative['attempts']} attempt(s)")
    verdict.executive_summary += f"\n\nNarrative ({llm.model_name()}, LLM; verdict above is deterministic): " \
                                 f"{narrative['executive_summary']}"
    for run in verdict.agent_runs:
        text = narrative["agents"].get(run["kind"])
        if text and run["status"] == "succeeded":
            run["data"]["narrative"] = {"source": "llm", "model": llm.model_name(), "text": text,
                                        "deterministic": run["summary"]}


def _gathered_title(gathered):
    counts = ", ".join(f"{kind} {len(found)}" for kind, found in gathered.items() if isinstance(found, list))
    return f"Stored records read ({counts})"


def _load():
    global _agents
    with _init_lock:  # two analysing threads (embedded mode) may start at once
        if _agents is None:
            attack.warm_up()
            _agents = load_agents()
    return _agents


def _executor():
    global _pool
    with _init_lock:
        if _pool is None:
            _pool = telemetry.ContextExecutor(max_workers=5, thread_name_prefix="agent")  # the trace goes on in the pool
    return _pool
