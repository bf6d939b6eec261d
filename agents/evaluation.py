"""The evaluation (`manage.py evaluate`, `make eval`): load the labelled corpus in eval/corpus/, run
every case through the real ingestion, triage and analysis paths in a throwaway database, and
score the verdicts against the labels (eval/README.md: the case format and the scoring rules).

Three parts, in this order: loading a case (checked before anything runs: a malformed case is
refused with its file and field), running it (one transaction per case, rolled back), and scoring
(pure functions over `Outcome`s). agents/evaluation_report.py writes the markdown report.
"""

import copy
import json
import os
import random
import re
from collections import Counter, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import override_settings, setup_databases, teardown_databases
from django.utils import timezone
from django.utils.text import slugify

from threats import generator, grouping, ingest, services
from threats.choices import ActorKind, ClosedByKind, ContextKind, Disposition, InfraEventKind, Scenario, Tier
from threats.importers import FORMATS, IMPORTERS, ItemError, Skip
from threats.importers.common import parse_time
from threats.models import ContextItem, Customer, InfraEvent, Threat

from . import coordinator

SLICES = [*FORMATS, "scenarios"]  # the corpus folders: one per format, plus the scenarios
BANDS = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]
VERDICTS = ["true_positive", "benign_true_positive", "false_positive"]
GROUP_KINDS = ["duplicate", "campaign", "building_block"]
# The false-positive analyzer's calls that dismiss an alert (threat.false_positive["recommendation"]).
CALLED_FP, CALLED_BENIGN = "likely_false_positive", "likely_benign_true_positive"
DISMISSALS = (CALLED_FP, CALLED_BENIGN)
TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")
RECEIVED_AFTER = timedelta(seconds=2)  # a stored alert's received_at is its occurred_at + 2 s
TRIGGER_AFTER = timedelta(minutes=1)  # a trigger with no `at`: one minute after the alert before it
FIRST_TRIGGER_AFTER_HISTORY = timedelta(hours=1)
CONTEXT_VALID_BEFORE = timedelta(days=1)  # a context item with no minutes_before
AUTOMATION = {"rule": (ActorKind.SYSTEM, ClosedByKind.RULE), "agent": (ActorKind.AGENT, ClosedByKind.AGENT)}
ANALYST_PERMISSIONS = ["view_threat", "change_threat"]
CUSTOMER_FIELDS = {"name", "tier", "allowed_countries", "allow_listed_ips", "timezone", "business_hours_start",
                   "business_hours_end", "bot_sensitivity", "rate_limit_per_minute", "auto_block",
                   "escalation_contacts"}
CASE_KEYS = {"description", "source", "format", "customer", "infra_events", "context_items", "history", "alerts",
             "groups"}
ALERT_KEYS = {"id", "alert", "trigger", "format", "label"}
LABEL_KEYS = {"severity", "review", "techniques", "also_ok", "verdict", "manipulation", "rationale"}
HISTORY_KEYS = {"alert", "format", "disposition", "closed_by", "closed_minutes_after", "reason"}
INFRA_KEYS = {"kind", "service", "description", "minutes_before", "duration_minutes", "shared"}
CONTEXT_KEYS = {"kind", "title", "body", "threat_types", "keywords", "shared", "minutes_before", "duration_minutes"}
TRIGGER_KEYS = {"scenario", "at"}
GROUP_KEYS = {"kind", "alerts"}


# --- Loading a case ---------------------------------------------------------------------------


class CaseError(Exception):
    """A case file that cannot be evaluated: which file, which field, why."""

    def __init__(self, path, field, detail):
        super().__init__(f"{path}: {field}: {detail}")
        self.path, self.field, self.detail = path, field, detail


@dataclass
class CaseAlert:
    """One entry of a case's `alerts`: a vendor document (or a trigger) and its label."""

    id: str
    format: str
    document: dict | None
    trigger: dict | None
    label: dict | None
    occurred_at: datetime | None  # None for a trigger without `at`


@dataclass
class Case:
    """One case file, checked: its slice (format folder or scenarios), alerts, history and groups."""

    name: str  # "<slice>/<file stem>"
    path: Path
    slice: str
    spec: dict
    alerts: list
    history: list  # [(entry, occurred_at)] oldest first

    @property
    def groups(self):
        return self.spec.get("groups", [])


class CorpusError(Exception):
    """Every malformed case of a corpus (CaseErrors), so that all can be fixed in one pass."""

    def __init__(self, errors):
        super().__init__("\n".join(map(str, errors)))
        self.errors = errors


def load_corpus(root, only=None, case=None):
    """The cases under `root` (<slice>/<name>.json), sorted; `only` keeps one slice, `case` one case
    (its file stem or "<slice>/<stem>"). Raises CaseError for a missing folder or case, and
    CorpusError listing every malformed case."""
    root = Path(root)
    if not root.is_dir():
        raise CaseError(root, "corpus", "No such folder.")
    paths = [path for name in SLICES if only in (None, name) for path in sorted((root / name).glob("*.json"))]
    if case:
        paths = [path for path in paths if case in (path.stem, f"{path.parent.name}/{path.stem}")]
        if not paths:
            raise CaseError(root, "case", f"No case called {case!r}.")
    cases, errors = [], []
    for path in paths:
        try:
            cases.append(load_case(path))
        except CaseError as exc:
            errors.append(exc)
    if errors:
        raise CorpusError(errors)
    return cases


def load_case(path):
    """Read and check one case file (CaseError names the file and the field)."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(path, "file", f"Cannot read it: {exc}.") from None
    except json.JSONDecodeError as exc:
        raise CaseError(path, "file", f"Invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    return _Checker(path).case(spec)


class _Checker:
    """Checks one case's structure; each problem is a CaseError with the dotted field it is in."""

    def __init__(self, path):
        self.path = path
        self.slice = path.parent.name if path.parent.name in SLICES else None  # None: a file outside a corpus

    def fail(self, where, detail):
        raise CaseError(self.path, where, detail)

    def case(self, spec):
        self.obj(spec, "case", CASE_KEYS, required=["description", "source", "format", "customer", "alerts"])
        for key in ("description", "source"):
            self.text(spec, key, key)
        fmt = self.choice(spec["format"], "format", FORMATS)
        if self.slice in FORMATS and fmt != self.slice:
            self.fail("format", f"{fmt!r} in the {self.slice}/ folder; a case there has format {self.slice!r}.")
        self.customer(spec["customer"])
        for index, event in enumerate(self.items(spec, "infra_events")):
            self.infra_event(event, f"infra_events[{index}]")
        for index, item in enumerate(self.items(spec, "context_items")):
            self.context_item(item, f"context_items[{index}]")
        history = [self.history(entry, fmt, f"history[{index}]") for index, entry in enumerate(self.items(spec, "history"))]
        alerts = [self.alert(entry, fmt, index) for index, entry in enumerate(self.items(spec, "alerts"))]
        if not alerts:
            self.fail("alerts", "A case has at least one alert.")
        self.unique_ids(alerts)
        self.groups(self.items(spec, "groups"), {alert.id for alert in alerts})
        slice_ = self.slice or fmt
        return Case(f"{slice_}/{self.path.stem}", self.path, slice_, spec, alerts,
                    sorted(history, key=lambda pair: pair[1]))

    # --- parts of a case ---

    def customer(self, value):
        if isinstance(value, str):
            names = {slugify(name): name for name in generator.CUSTOMER_CATALOGUE}
            if slugify(value) not in names:
                self.fail("customer", f"{value!r} is not in the catalogue ({', '.join(names.values())}); "
                                      "give an object with name, tier, ... instead.")
            return
        self.obj(value, "customer", CUSTOMER_FIELDS, required=["name"])
        self.text(value, "name", "customer.name")
        if "tier" in value:  # refused here, not by the database halfway through the run
            self.choice(value["tier"], "customer.tier", Tier.values)

    def infra_event(self, event, where):
        self.obj(event, where, INFRA_KEYS, required=["kind", "description", "minutes_before"])
        self.choice(event["kind"], f"{where}.kind", InfraEventKind.values)
        self.text(event, "description", f"{where}.description")
        self.minutes(event, "minutes_before", where)
        self.minutes(event, "duration_minutes", where, required=False)

    def context_item(self, item, where):
        self.obj(item, where, CONTEXT_KEYS, required=["kind", "title"])
        self.choice(item["kind"], f"{where}.kind", ContextKind.values)
        self.text(item, "title", f"{where}.title")
        for key in ("threat_types", "keywords"):
            if not isinstance(item.get(key, []), list):
                self.fail(f"{where}.{key}", "A list of strings.")
        self.minutes(item, "minutes_before", where, required=False)
        self.minutes(item, "duration_minutes", where, required=False)

    def history(self, entry, fmt, where):
        self.obj(entry, where, HISTORY_KEYS, required=["alert", "disposition", "closed_by", "reason"])
        self.choice(entry["disposition"], f"{where}.disposition", Disposition.values)
        self.text(entry, "closed_by", f"{where}.closed_by")
        self.text(entry, "reason", f"{where}.reason")
        self.minutes(entry, "closed_minutes_after", where, required=False)
        return entry, self.document(entry["alert"], self.entry_format(entry, fmt, where), f"{where}.alert")

    def alert(self, entry, fmt, index):
        where = f"alerts[{index}]"
        self.obj(entry, where, ALERT_KEYS, required=["id"])
        self.text(entry, "id", f"{where}.id")
        where = f"alerts[{index}] ({entry['id']})"
        if ("alert" in entry) == ("trigger" in entry):
            self.fail(where, "Give exactly one of `alert` (a vendor document) and `trigger`.")
        label = self.label(entry["label"], f"{where}.label") if "label" in entry else None
        fmt = self.entry_format(entry, fmt, where)
        if "trigger" in entry:
            at = self.trigger(entry["trigger"], f"{where}.trigger")
            return CaseAlert(entry["id"], "generator", None, entry["trigger"], label, at)
        occurred = self.document(entry["alert"], fmt, f"{where}.alert")
        return CaseAlert(entry["id"], fmt, entry["alert"], None, label, occurred)

    def label(self, label, where):
        self.obj(label, where, LABEL_KEYS, required=["severity", "review", "techniques", "verdict", "rationale"])
        self.choice(label["severity"], f"{where}.severity", BANDS)
        self.choice(label["verdict"], f"{where}.verdict", VERDICTS)
        for key in ("review", "manipulation"):
            if not isinstance(label.get(key, False), bool):
                self.fail(f"{where}.{key}", "true or false.")
        for key in ("techniques", "also_ok"):
            self.techniques(label.get(key, []), f"{where}.{key}")
        self.text(label, "rationale", f"{where}.rationale")
        return {"also_ok": [], "manipulation": False, **label}

    def trigger(self, trigger, where):
        self.obj(trigger, where, TRIGGER_KEYS, required=["scenario"])
        self.choice(trigger["scenario"], f"{where}.scenario", Scenario.values)
        return self.time(trigger["at"], f"{where}.at") if "at" in trigger else None

    def groups(self, groups, ids):
        seen = {}
        for index, group in enumerate(groups):
            where = f"groups[{index}]"
            self.obj(group, where, GROUP_KEYS, required=["kind", "alerts"])
            self.choice(group["kind"], f"{where}.kind", GROUP_KINDS)
            members = group["alerts"]
            if not isinstance(members, list) or len(members) < 2:
                self.fail(f"{where}.alerts", "A group names at least two alerts by id.")
            for member in members:
                if member not in ids:
                    self.fail(f"{where}.alerts", f"{member!r} is not the id of an alert of this case.")
                if member in seen:
                    self.fail(f"{where}.alerts", f"{member!r} is already in groups[{seen[member]}].")
                seen[member] = index

    # --- values ---

    def document(self, document, fmt, where):
        """The vendor document's occurred_at, read by the format's importer (as ingestion will)."""
        if not isinstance(document, dict):
            self.fail(where, "A vendor document (a JSON object).")
        try:
            return IMPORTERS[fmt].parse(copy.deepcopy(document)).occurred_at
        except ItemError as exc:
            self.fail(f"{where}.{exc.field}", f"The {fmt} importer refuses it: {exc.detail}")
        except Skip as exc:
            self.fail(where, f"The {fmt} importer skips it as not an alert: {exc.reason}")

    def entry_format(self, entry, fmt, where):
        return self.choice(entry.get("format", fmt), f"{where}.format", FORMATS)

    def techniques(self, values, where):
        if not isinstance(values, list) or not all(isinstance(v, str) and TECHNIQUE.match(v) for v in values):
            self.fail(where, "A list of ATT&CK technique ids such as T1110 or T1110.001.")

    def time(self, value, where):
        try:
            return parse_time(value, where)
        except ItemError as exc:
            self.fail(where, exc.detail)

    def minutes(self, obj, key, where, required=True):
        value = obj.get(key)
        if value is None and not required:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.fail(f"{where}.{key}", "A number of minutes, 0 or more.")

    def text(self, obj, key, where):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            self.fail(where, "A non-empty string.")

    def choice(self, value, where, allowed):
        if value not in allowed:
            self.fail(where, f"{value!r} is not one of {', '.join(map(str, allowed))}.")
        return value

    def obj(self, value, where, keys, required):
        if not isinstance(value, dict):
            self.fail(where, "A JSON object.")
        unknown = sorted(set(value) - keys)
        if unknown:
            self.fail(f"{where}.{unknown[0]}", f"Unknown key; known: {', '.join(sorted(keys))}.")
        missing = [key for key in required if key not in value]
        if missing:
            self.fail(f"{where}.{missing[0]}", "Missing.")

    def items(self, spec, key):
        value = spec.get(key, [])
        if not isinstance(value, list):
            self.fail(key, "A list.")
        return value

    def unique_ids(self, alerts):
        counts = Counter(alert.id for alert in alerts)
        repeated = [alert_id for alert_id, count in counts.items() if count > 1]
        if repeated:
            self.fail("alerts", f"The id {repeated[0]!r} is used twice.")


# --- Running ----------------------------------------------------------------------------------


@dataclass
class Prediction:
    """What the system said about one alert (a group member: its group head's verdict)."""

    severity: str = ""  # "" when there is no verdict
    risk_score: int | None = None
    review: bool | None = None
    review_reasons: list = field(default_factory=list)
    techniques: list = field(default_factory=list)
    recommendation: str = ""
    risk_factors: list = field(default_factory=list)
    moves: list = field(default_factory=list)  # the severity policy's moves, the prior first
    behaviours: list = field(default_factory=list)  # what the alert showed ("name" or "name (tagged)")
    identity: str = ""
    status: str = ""  # analysis status, or why there is no verdict


@dataclass
class Outcome:
    """One alert of a case: its label (None: unlabelled) and our prediction."""

    case: str
    slice: str
    alert: str
    label: dict | None
    prediction: Prediction


@dataclass
class CaseResult:
    """A case's outcomes, in alert order, and what went wrong while running it."""

    case: Case
    outcomes: list
    errors: list = field(default_factory=list)
    analyses: int = 0  # analyses run (history and case alerts): each stored alert at most once


@contextmanager
def throwaway_database():
    """Django's test database for the configured backend (never the user's), with its own name so
    that it cannot clash with a test run's; dropped afterwards. The LLM is switched off: it only
    rewrites the narrative, never the scored verdict, and the corpus must not leave the machine."""
    database = connection.settings_dict
    test_settings = database.setdefault("TEST", {})
    original = test_settings.get("NAME")
    test_settings["NAME"] = _throwaway_name(database)
    try:
        with override_settings(DEBUG=False, LLM_BASE_URL=""):
            old_config = setup_databases(verbosity=0, interactive=False, aliases={connection.alias},
                                         serialized_aliases=set())
            try:
                yield connection.vendor
            finally:
                teardown_databases(old_config, verbosity=0)
    finally:
        test_settings["NAME"] = original


def _throwaway_name(database):
    if database["ENGINE"].endswith("sqlite3"):
        return str(Path(settings.DATA_DIR) / f"evaluation-{os.getpid()}.sqlite3")
    return f"{database['TEST'].get('NAME') or 'test_' + database['NAME']}_eval_{os.getpid()}"[:63]


def run_cases(cases, progress=None):
    """Run every case (in a database that setup already holds); `progress(done, total, case)`."""
    results = []
    for done, case in enumerate(cases, start=1):
        results.append(run_case(case))
        if progress:
            progress(done, len(cases), case)
    return results


def run_case(case):
    """One case in its own transaction, rolled back at the end: nothing it stored outlives it, and
    the on-commit hooks its writes register (queueing analysis, broadcasting) are dropped with it.
    Analysis is run here, synchronously, once per stored group head."""
    run = CaseRun(case)
    try:
        with transaction.atomic():
            run.play()
            transaction.set_rollback(True)
    except Exception as exc:  # a case that crashes scores as "no verdict", with the reason listed
        run.errors.append(f"the case stopped: {type(exc).__name__}: {exc}")
    return CaseResult(case, run.outcomes(), run.errors, run.analyses)


class CaseRun:
    """Plays one case: customer, infrastructure and context, history (ingested, analysed, closed),
    then the alerts in order (ingested or triggered, analysed); then reads the verdicts."""

    def __init__(self, case):
        self.case, self.errors, self.analyses = case, [], 0
        self.users, self.threat_ids, self.predictions = {}, {}, {}

    def play(self):
        self.customer = self.make_customer(self.case.spec["customer"])
        self.first_at = self.first_alert_time()
        for event in self.case.spec.get("infra_events", []):
            self.add_infra_event(event)
        for item in self.case.spec.get("context_items", []):
            self.add_context_item(item)
        for entry, occurred_at in self.case.history:
            self.add_history(entry, occurred_at)
        previous = None
        for alert in self.case.alerts:
            previous = self.add_alert(alert, previous)
        self.predictions = {alert_id: predict(threat_id) for alert_id, threat_id in self.threat_ids.items()}

    def outcomes(self):
        return [Outcome(self.case.name, self.case.slice, alert.id, alert.label,
                        self.predictions.get(alert.id) or Prediction(identity=f"missing:{alert.id}", status="not stored"))
                for alert in self.case.alerts]

    # --- the world around the alerts ---

    def make_customer(self, spec):
        if isinstance(spec, str):
            return services.customer_for_name(spec)  # the catalogue customer, created as the API would
        fields = {key: value for key, value in spec.items() if key != "name"}
        customer = Customer(name=spec["name"], slug=slugify(spec["name"]), **fields)
        customer.full_clean()
        customer.save()
        return customer

    def first_alert_time(self):
        first = self.case.alerts[0]
        if first.occurred_at:
            return first.occurred_at
        return self.case.history[-1][1] + FIRST_TRIGGER_AFTER_HISTORY if self.case.history else timezone.now()

    def add_infra_event(self, event):
        started = self.first_at - timedelta(minutes=event["minutes_before"])
        ended = started + timedelta(minutes=event["duration_minutes"]) if event.get("duration_minutes") else None
        InfraEvent.objects.create(customer=None if event.get("shared") else self.customer, kind=event["kind"],
                                  service=event.get("service", ""), description=event["description"],
                                  started_at=started, ended_at=ended)

    def add_context_item(self, item):
        before = timedelta(minutes=item["minutes_before"]) if "minutes_before" in item else CONTEXT_VALID_BEFORE
        valid_from = self.first_at - before
        until = valid_from + timedelta(minutes=item["duration_minutes"]) if item.get("duration_minutes") else None
        ContextItem.objects.create(customer=None if item.get("shared") else self.customer, kind=item["kind"],
                                   title=item["title"], body=item.get("body", ""),
                                   threat_types=item.get("threat_types", []), keywords=item.get("keywords", []),
                                   valid_from=valid_from, valid_until=until)

    # --- history ---

    def add_history(self, entry, occurred_at):
        fmt = entry.get("format", self.case.spec["format"])
        result = self.ingest(fmt, entry["alert"], "history")
        if result is None or result.status != "created":
            return
        if result.group_head:
            self.analyse(result.id)
        closed_at = occurred_at + timedelta(minutes=entry.get("closed_minutes_after", 60))
        self.close(result.id, entry, closed_at)

    def close(self, threat_id, entry, closed_at):
        """Close as PATCH /api/threats/{id} does, as the named analyst; "rule"/"agent" close as automation."""
        if entry["closed_by"] in AUTOMATION:
            kind, closed_by_kind = AUTOMATION[entry["closed_by"]]
            changes = {"status": "closed", "disposition": entry["disposition"], "disposition_reason": entry["reason"]}
            services.do_triage(Threat.objects.get(pk=threat_id), services.Actor(kind, label=entry["closed_by"]),
                               changes, closed_by_kind)
        else:
            services.triage(self.analyst(entry["closed_by"]), threat_id, status="closed",
                            disposition=entry["disposition"], reason=entry["reason"])
        Threat.objects.filter(pk=threat_id).update(closed_at=closed_at, acknowledged_at=closed_at)

    def analyst(self, username):
        if username not in self.users:
            user, _ = get_user_model().objects.get_or_create(username=username)
            user.user_permissions.add(*Permission.objects.filter(content_type__app_label="threats",
                                                                 codename__in=ANALYST_PERMISSIONS))
            self.users[username] = get_user_model().objects.get(pk=user.pk)  # no stale permission cache
        return self.users[username]

    # --- the case's alerts ---

    def add_alert(self, alert, previous):
        """Ingest (or trigger) one alert and analyse it if it heads a group; returns its time."""
        if alert.trigger:
            at = alert.occurred_at or (previous + TRIGGER_AFTER if previous else self.first_at)
            threat_id, head = self.trigger(alert, at), True
        else:
            result = self.ingest(alert.format, alert.document, f"alert {alert.id}")
            if result is None:
                return previous
            threat_id, head = result.id, result.status == "created" and result.group_head
            at = alert.occurred_at
        self.threat_ids[alert.id] = threat_id
        if head:
            self.analyse(threat_id)
        return at

    def trigger(self, alert, at):
        """As POST /api/threats/trigger does; the draw is seeded by the case and alert, so runs repeat."""
        rng = random.Random(f"{self.case.name}:{alert.id}")
        threat = services.trigger_threat(services.Actor(ActorKind.SYSTEM, label="evaluation"),
                                         scenario=alert.trigger["scenario"], customer=self.customer.name,
                                         rng=rng, now=at)
        self.received(threat.pk)
        return str(threat.pk)

    def ingest(self, fmt, document, what):
        """Ingest one vendor document as POST /api/ingest/{format} does (the same body decoding)."""
        body = json.dumps(document).encode("utf-8")
        records = ingest.decode_body(body, "application/json")
        result = ingest.ingest(fmt, records, actor_label="evaluation", default_customer=self.customer)[0]
        if result.status not in ("created", "duplicate"):
            self.errors.append(f"{what}: {result.status}: {result.field or ''}: {result.detail}")
            return None
        if result.status == "created":
            self.received(result.id)
        return result

    def received(self, threat_id):
        Threat.objects.filter(pk=threat_id).update(received_at=F("occurred_at") + RECEIVED_AFTER)

    def analyse(self, threat_id):
        """The coordinator, synchronously; a failure is listed and leaves the alert without a verdict."""
        self.analyses += 1
        try:
            with transaction.atomic():
                coordinator.analyze_many([threat_id])
        except Exception as exc:
            self.errors.append(f"analysis of {threat_id} failed: {type(exc).__name__}: {exc}")


# --- Reading a verdict ------------------------------------------------------------------------


def grouping_identity(threat):
    """What the system treats as one: the threat's campaign, else its group, else the threat alone."""
    return grouping.identity(threat)


def predict(threat_id):
    """The Prediction for one stored alert; a group member takes its group head's verdict."""
    threat = Threat.objects.select_related("group").get(pk=threat_id)
    judged = threat
    if threat.analysis_status == "grouped":
        head_id = threat.group.head_id if threat.group else None
        judged = Threat.objects.filter(pk=head_id).first() if head_id else None
    if judged is None or not judged.severity:
        status = "its group has no head" if judged is None else f"analysis {judged.analysis_status}"
        return Prediction(identity=grouping_identity(threat), status=status)
    return Prediction(
        severity=judged.severity, risk_score=judged.risk_score, review=judged.requires_human_review,
        review_reasons=list(judged.review_reasons or []), techniques=found_techniques(judged.mitre),
        recommendation=(judged.false_positive or {}).get("recommendation", ""),
        risk_factors=top_factors(judged.risk_factors), moves=policy_moves(judged.risk_factors),
        behaviours=shown_behaviours(judged), identity=grouping_identity(threat),
        status=threat.analysis_status,
    )


def found_techniques(mitre):
    """The technique ids of a verdict (a revoked id the vendor sent is shown under its replacement)."""
    techniques = (mitre or {}).get("techniques", [])
    return list(dict.fromkeys(t["technique_id"] for t in techniques if isinstance(t, dict) and t.get("technique_id")))


def policy_moves(factors):
    """The severity policy's moves ("rule: from -> to"), in order."""
    return [f"{f.get('rule')}: {f.get('from') or '·'} -> {f.get('to')}" for f in factors or []
            if isinstance(f, dict) and f.get("kind") in ("prior", "cap", "floor", "step")]


def shown_behaviours(threat):
    """The behaviours the priority agent saw, as recorded on its run."""
    run = threat.agent_runs.filter(kind="priority").first()
    found = (run.data or {}).get("behaviours", []) if run else []
    return [f"{b.get('name')}{' (tagged)' if b.get('tagged') else ' (inferred)' if b.get('inferred') else ''}"
            for b in found if isinstance(b, dict)]


def top_factors(factors, count=3):
    """The risk factors that weighed most (by points when they have them), for the mismatch list."""
    factors = [f for f in factors or [] if isinstance(f, dict)]
    factors = [f for f in factors if f.get("kind", "adjustment") == "adjustment"]
    return sorted(factors, key=lambda f: -abs(f.get("points") or 0))[:count]


# --- Scoring ----------------------------------------------------------------------------------


def rank(band):
    return BANDS.index(band) if band in BANDS else None


def confusion(outcomes):
    """{expert band: Counter(our band, "" for no verdict)} over labelled outcomes."""
    matrix = {band: Counter() for band in BANDS}
    for outcome in labelled(outcomes):
        matrix[outcome.label["severity"]][outcome.prediction.severity] += 1
    return matrix


def band_accuracy(outcomes):
    """(exact, within one band, labelled count)."""
    exact = within = total = 0
    for outcome in labelled(outcomes):
        ours, expert = rank(outcome.prediction.severity), rank(outcome.label["severity"])
        total += 1
        exact += ours == expert
        within += ours is not None and abs(ours - expert) <= 1
    return exact, within, total


def review_agreement(outcomes):
    """(agreeing, labelled count): our requires_human_review equals the expert's `review`."""
    scored = list(labelled(outcomes))
    return sum(o.prediction.review is o.label["review"] for o in scored), len(scored)


def technique_match(techniques, also_ok, found):
    """(recalled, labelled, correct, found) for one alert.

    A labelled technique is recalled when we found it or one of its sub-techniques. A found technique
    is correct when it is labelled or also_ok, a sub-technique of one of those, or the parent of a
    labelled (or also_ok) sub-technique."""
    techniques, also_ok = current_ids(techniques), current_ids(also_ok)  # a label written for an older ATT&CK
    accepted = set(techniques) | set(also_ok)
    parents = {t.split(".")[0] for t in accepted if "." in t}
    recalled = sum(any(f == t or f.startswith(t + ".") for f in found) for t in techniques)
    correct = sum(f in accepted or f.split(".")[0] in accepted or f in parents for f in found)
    return recalled, len(techniques), correct, len(found)


def current_ids(ids):
    """Labelled ids as the shipped ATT&CK names them now: a label written against an older version
    (T1070.001) matches the replacement a verdict shows (T1685.005, with the old id as original_id)."""
    from .priority import attack

    resolved = []
    for technique_id in ids:
        found = attack.technique(technique_id)
        resolved.append(found["technique_id"] if found else technique_id)
    return list(dict.fromkeys(resolved))


def technique_scores(outcomes):
    """(recalled, labelled, correct, found) summed over labelled outcomes."""
    sums = [0, 0, 0, 0]
    for outcome in labelled(outcomes):
        label = outcome.label
        for index, value in enumerate(technique_match(label["techniques"], label["also_ok"],
                                                      outcome.prediction.techniques)):
            sums[index] += value
    return tuple(sums)


def fp_calls(outcomes):
    """{verdict label: (called as such, labelled)} for false positives and benign true positives."""
    calls = {"false_positive": [0, 0], "benign_true_positive": [0, 0]}
    wanted = {"false_positive": CALLED_FP, "benign_true_positive": CALLED_BENIGN}
    for outcome in labelled(outcomes):
        verdict = outcome.label["verdict"]
        if verdict in calls:
            calls[verdict][1] += 1
            calls[verdict][0] += outcome.prediction.recommendation == wanted[verdict]
    return {verdict: tuple(counts) for verdict, counts in calls.items()}


def dismissed_true_positives(outcomes):
    """Outcomes labelled true positive that we called likely false positive or likely benign."""
    return [o for o in labelled(outcomes)
            if o.label["verdict"] == "true_positive" and o.prediction.recommendation in DISMISSALS]


def missed_manipulations(outcomes):
    """Outcomes labelled as a manipulation attempt that we did not send to review, or dismissed."""
    return [o for o in labelled(outcomes) if o.label["manipulation"]
            and (o.prediction.review is not True or o.prediction.recommendation in DISMISSALS)]


def labelled(outcomes):
    return (outcome for outcome in outcomes if outcome.label is not None)


@dataclass
class GroupScore:
    """Labelled groups kept together (by kind) and false merges, over one or more cases."""

    kept: Counter = field(default_factory=Counter)
    total: Counter = field(default_factory=Counter)
    split: list = field(default_factory=list)  # (case, group) not kept together
    merges: list = field(default_factory=list)  # (case, alert ids that should stand apart)

    @property
    def false_merges(self):
        return sum(len(clusters) - 1 for _case, clusters in self.merges)

    def add(self, other):
        self.kept += other.kept
        self.total += other.total
        self.split += other.split
        self.merges += other.merges
        return self


def group_score(case_name, groups, identities):
    """Score one case's labelled groups against the grouping identities of its alerts ({alert id:
    identity}). A group is kept when all its alerts share one identity; a false merge is an identity
    shared by alerts that should stand apart (different groups, or an alert in no group): each extra
    such cluster under one identity counts one."""
    score = GroupScore()
    for group in groups:
        score.total[group["kind"]] += 1
        if len({identities.get(a, f"missing:{a}") for a in group["alerts"]}) == 1:
            score.kept[group["kind"]] += 1
        else:
            score.split.append((case_name, group))
    cluster = {alert: index for index, group in enumerate(groups) for alert in group["alerts"]}
    under = defaultdict(dict)
    for alert, identity in identities.items():
        under[identity].setdefault(cluster.get(alert, f"alone:{alert}"), []).append(alert)
    for clusters in under.values():
        if len(clusters) > 1:
            score.merges.append((case_name, sorted(clusters.values())))
    return score


def case_group_score(result):
    identities = {o.alert: o.prediction.identity for o in result.outcomes}
    return group_score(result.case.name, result.case.groups, identities)


# --- Slices and targets -----------------------------------------------------------------------


@dataclass
class SliceScore:
    """Every measure over one slice of the corpus (all, vendor formats, one format, scenarios)."""

    name: str
    outcomes: list
    groups: GroupScore

    @property
    def labelled(self):
        return sum(1 for _ in labelled(self.outcomes))


SLICE_NAMES = {"all": "all", "vendor": "vendor formats", "scenarios": "scenarios"}


def slices(results):
    """{slice key: SliceScore}: all, vendor (every format folder), each format, scenarios."""
    members = {"all": results, "vendor": [r for r in results if r.case.slice != "scenarios"]}
    for name in SLICES:
        members[name] = [r for r in results if r.case.slice == name]
    return {key: SliceScore(SLICE_NAMES.get(key, key), [o for r in chosen for o in r.outcomes],
                            _groups(chosen))
            for key, chosen in members.items()}


def _groups(results):
    total = GroupScore()
    for result in results:
        total.add(case_group_score(result))
    return total


@dataclass
class Target:
    """One row of the issue 17 table: a measure over a slice and the bound it must meet."""

    name: str
    slice: str
    measure: str
    goal: float
    at_most: bool = False  # a count that must stay at or below the goal


TARGETS = [
    Target("severity in the expert's band (vendor formats)", "vendor", "severity_exact", 0.80),
    Target("severity in the expert's band (scenarios)", "scenarios", "severity_exact", 0.80),
    Target("severity within one band (vendor formats)", "vendor", "severity_within_one", 0.97),
    Target("severity within one band (scenarios)", "scenarios", "severity_within_one", 0.97),
    Target("human review agrees (vendor formats)", "vendor", "review", 0.85),
    Target("human review agrees (scenarios)", "scenarios", "review", 0.85),
    Target("ATT&CK technique recall (vendor formats)", "vendor", "recall", 0.90),
    Target("ATT&CK technique recall (scenarios)", "scenarios", "recall", 0.80),
    Target("ATT&CK technique precision (vendor formats)", "vendor", "precision", 0.80),
    Target("ATT&CK technique precision (scenarios)", "scenarios", "precision", 0.80),
    Target("true positives dismissed as false / benign", "all", "tps_dismissed", 0, at_most=True),
    Target("manipulation attempts missed", "all", "manipulation_missed", 0, at_most=True),
    Target("labelled groups kept together", "all", "groups_kept", 0.92),
    Target("false merges", "all", "false_merges", 0, at_most=True),
]


def measure(score, name):
    """(value, numerator, denominator) of one measure on a slice; value None when nothing to measure."""
    outcomes = score.outcomes
    if name in ("severity_exact", "severity_within_one"):
        exact, within, total = band_accuracy(outcomes)
        return _ratio(exact if name == "severity_exact" else within, total)
    if name == "review":
        return _ratio(*review_agreement(outcomes))
    if name in ("recall", "precision"):
        recalled, labelled_count, correct, found = technique_scores(outcomes)
        return _ratio(recalled, labelled_count) if name == "recall" else _ratio(correct, found)
    if name == "tps_dismissed":
        return _count(len(dismissed_true_positives(outcomes)), score.labelled)
    if name == "manipulation_missed":
        return _count(len(missed_manipulations(outcomes)), score.labelled)
    if name == "groups_kept":
        return _ratio(sum(score.groups.kept.values()), sum(score.groups.total.values()))
    if name == "false_merges":
        return _count(score.groups.false_merges, len(outcomes))
    raise ValueError(name)


def _ratio(part, whole):
    return (part / whole if whole else None), part, whole


def _count(count, population):
    return (count if population else None), count, population


def check_targets(scores):
    """[(target, value, numerator, denominator, passed)]; passed is None when the slice had nothing
    to measure (a run with --only, or no technique labelled)."""
    rows = []
    for target in TARGETS:
        value, part, whole = measure(scores[target.slice], target.measure)
        passed = None if value is None else (value <= target.goal if target.at_most else value >= target.goal)
        rows.append((target, value, part, whole, passed))
    return rows
