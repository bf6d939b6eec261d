"""Kill-chain stitching (issue 21 item 3, docs/stories.md): each analysed alert joins the open story
of each entity it names (host, user, source address) within its customer, and the story's ATT&CK
tactics are read in time order.

- Open story: the entity's story whose last alert happened at most WINDOW before this one (and whose
  first at most WINDOW after it); otherwise the alert starts a new story.
- Flag: the first alert that brings a tactic the story had not shown, standing later in the kill
  chain (KILL_CHAIN) than a tactic an earlier alert reached. Set once, never withdrawn.
- Severity: the highest single alert's, one band higher (never past CRITICAL) when the story spans
  3+ tactics, or reaches exfiltration or impact after an earlier alert reached another stage.
- An alert the agents or an analyst dismissed (false positive, benign) does not advance a story; a
  grouped member is represented by its group head (only the head is analysed).

`progression` folds links into the story's state; stitching a new latest alert is one `advance`
step on the stored state, anything else (an alert older than the story's last, a dismissal) folds
the story's links again. Called by threats.services in the transaction that stores the verdict.
"""

from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.utils import timezone

from threats import grouping, sql
from threats.choices import CLOSED_STATUSES, AnalysisStatus

from .models import EntityKind, Story, StoryThreat

WINDOW = timedelta(hours=24)
FLAGGED_EVENT = "story.flagged"
# ATT&CK Enterprise tactics in the matrix's (kill-chain) order; names as of v19 (TA0005 renamed Stealth).
KILL_CHAIN = (
    ("TA0043", "Reconnaissance"), ("TA0042", "Resource Development"), ("TA0001", "Initial Access"),
    ("TA0002", "Execution"), ("TA0003", "Persistence"), ("TA0004", "Privilege Escalation"),
    ("TA0005", "Stealth"), ("TA0112", "Defense Impairment"), ("TA0006", "Credential Access"),
    ("TA0007", "Discovery"), ("TA0008", "Lateral Movement"), ("TA0009", "Collection"),
    ("TA0011", "Command and Control"), ("TA0010", "Exfiltration"), ("TA0040", "Impact"),
)
STAGE = {tactic_id: index for index, (tactic_id, _name) in enumerate(KILL_CHAIN)}
TACTIC_NAMES = dict(KILL_CHAIN)
FINAL_STAGES = frozenset({"TA0010", "TA0040"})  # exfiltration, impact: what the attack was for
BREADTH = 3  # tactics that make a story worse than its worst alert
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# The false-positive analyzer's calls and the analysts' dispositions that dismiss an alert.
DISMISSING_CALLS = frozenset({"likely_false_positive", "likely_benign_true_positive"})
DISMISSING_DISPOSITIONS = frozenset({"false_positive", "benign_true_positive"})
ENTITY_MAX = 255


# --- One alert -----------------------------------------------------------------------------------


def entities(threat):
    """[(kind, value)] the alert is about: its host, the person its user is (system and placeholder
    accounts are nobody's: threats/grouping.py), its source address."""
    observables = threat.observables or {}
    host = str(observables.get("host") or "").strip().casefold()
    user = grouping.person(observables.get("user") or "")
    source = str(observables.get("src_ip") or "").strip()
    found = [(EntityKind.HOST, host), (EntityKind.USER, user), (EntityKind.SOURCE, source)]
    return [(kind, value[:ENTITY_MAX]) for kind, value in found if value]


def tactics_of(mitre):
    """[{id, name}] of the verdict's tactics in kill-chain order; ids outside the Enterprise matrix are left out."""
    found = {}
    for tactic in (mitre or {}).get("tactics") or []:
        tactic_id = tactic.get("id") if isinstance(tactic, dict) else None
        if tactic_id in STAGE:
            found[tactic_id] = {"id": tactic_id, "name": str(tactic.get("name") or TACTIC_NAMES[tactic_id])}
    return sorted(found.values(), key=lambda tactic: STAGE[tactic["id"]])


def dismissed(threat):
    """An analyst closed it as a false positive or benign; else, the agents called it one (an
    analyst's closing disposition overrules the agents' call)."""
    if threat.status in CLOSED_STATUSES and threat.disposition:
        return threat.disposition in DISMISSING_DISPOSITIONS
    return (threat.false_positive or {}).get("recommendation") in DISMISSING_CALLS


def stitchable(threat):
    """Analysed on its own (a grouped member rides on its head) and not dismissed."""
    return threat.analysis_status == AnalysisStatus.COMPLETED and not dismissed(threat)


# --- A story's progression ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """What a story's counting alerts add up to, read in time order."""

    reached: list = field(default_factory=list)  # [{id, name, threat, at}] in the order reached
    alert_severity: str = ""
    flagged_by: str | None = None  # the threat whose tactic made the first progression

    @classmethod
    def of(cls, story):
        return cls(list(story.tactics), story.alert_severity, str(story.flagged_threat_id or "") or None)


def advance(progress, link):
    """The progress after one more alert (a StoryThreat), later than every alert read so far."""
    threat_id, at = str(link.threat_id), link.occurred_at.isoformat()
    shown = {tactic["id"] for tactic in progress.reached}
    new = [tactic for tactic in link.tactics if tactic["id"] not in shown]
    earlier = [STAGE[t["id"]] for t in progress.reached if t["threat"] != threat_id]
    flagged_by = progress.flagged_by
    if flagged_by is None and earlier and any(STAGE[t["id"]] > min(earlier) for t in new):
        flagged_by = threat_id
    reached = progress.reached + [{**tactic, "threat": threat_id, "at": at} for tactic in new]
    return replace(progress, reached=reached, alert_severity=_worse(progress.alert_severity, link.severity),
                   flagged_by=flagged_by)


def progression(links):
    """The progress of a story's alerts (StoryThreats), folded in time order; dismissed ones skipped."""
    progress = Progress()
    for link in sorted(links, key=lambda link: (link.occurred_at, str(link.threat_id))):
        if link.counts:
            progress = advance(progress, link)
    return progress


def story_severity(alert_severity, reached):
    """(severity, why it is above the worst alert's or None): the rule of the module docstring."""
    reason = _raise_reason(reached)
    if not alert_severity or reason is None or alert_severity == SEVERITIES[-1]:
        return alert_severity, None
    return SEVERITIES[SEVERITIES.index(alert_severity) + 1], reason


def _raise_reason(reached):
    if len(reached) >= BREADTH:
        return f"{len(reached)} tactics"
    for index, tactic in enumerate(reached):
        if tactic["id"] in FINAL_STAGES and any(t["threat"] != tactic["threat"] for t in reached[:index]):
            return f"{tactic['name']} after an earlier stage"
    return None


def _worse(first, second):
    rank = {name: index for index, name in enumerate(SEVERITIES)}
    return max(first or "", second or "", key=lambda name: rank.get(name, -1))


# --- Stitching into stored stories ------------------------------------------------------------------------


def stitch(threats, now=None):
    """Attach each analysed threat to its entities' open stories (creating them); returns
    [(story, flagging threat id)] for the stories flagged by this call. Idempotent: a threat
    already in a story updates its place there. The caller holds the transaction (and the
    event-log lock, which serialises story writes: two alerts of one host never race).

    A batch of verdicts costs the same statements as one (as services.do_record_analyses): one
    read of the threats' links, one of their entities' open stories, one INSERT of new stories,
    one of the links, one UPDATE of the stories changed — and one read of the links of stories
    that must be re-read (an alert older than its story's last)."""
    placed = [(threat, kind, value) for threat in sorted(threats, key=lambda t: (t.occurred_at, str(t.pk)))
              if stitchable(threat) for kind, value in entities(threat)]
    if not placed:
        return []
    batch = _Batch(placed, now or timezone.now())
    for threat, kind, value in placed:
        batch.place(threat, kind, value)
    return batch.save()


class _Batch:
    """The stories of one batch of threats, worked out in memory and written at the end."""

    def __init__(self, placed, now):
        # Stories by identity: a new one has no id (so no hash) until it is inserted.
        self.now, self.links, self.refold, self.changed, self.new = now, [], {}, {}, []
        ids = {threat.pk for threat, _kind, _value in placed}
        self.known = set(StoryThreat.objects.filter(threat_id__in=ids).values_list("story_id", "threat_id"))
        self.candidates = {}  # (customer, kind, entity) -> [Story], stored and new
        for story in _open_stories(placed):
            self.candidates.setdefault((story.customer_id, story.entity_kind, story.entity), []).append(story)

    def place(self, threat, kind, value):
        at = threat.occurred_at
        link = StoryThreat(threat=threat, occurred_at=at, tactics=tactics_of(threat.mitre), severity=threat.severity)
        story = self._open(threat.customer_id, kind, value, at)
        if story.pk and (story.pk, threat.pk) in self.known:  # analysed again: its place is re-read
            StoryThreat.objects.filter(story=story, threat=threat).update(
                occurred_at=at, tactics=link.tactics, severity=link.severity, counts=True)
            self.refold[id(story)] = story
            return
        link.story = story
        self.links.append(link)
        if id(story) in self.refold or at < story.last_seen:
            self.refold[id(story)] = story  # read again in time order once the links are stored
            return
        progress = advance(Progress.of(story), link)
        _apply(story, progress, threat_count=story.threat_count + 1, last_seen=at)
        if _flag(story, progress, self.now):
            story.newly_flagged = True
        self.changed[id(story)] = story

    def _open(self, customer_id, kind, value, at):
        """The entity's story whose window holds `at` (the latest), else a new one."""
        stories = self.candidates.setdefault((customer_id, kind, value), [])
        open_ = [s for s in stories if s.last_seen >= at - WINDOW and s.first_seen <= at + WINDOW]
        if open_:
            return max(open_, key=lambda s: (s.last_seen, s.pk or 0))
        story = Story(customer_id=customer_id, entity_kind=kind, entity=value, first_seen=at, last_seen=at)
        stories.append(story)
        self.new.append(story)
        return story

    def save(self):
        """Write it all; the stories this batch flagged."""
        Story.objects.bulk_create(self.new)
        StoryThreat.objects.bulk_create(self.links)  # a link to a new story takes its id here
        if self.refold:
            _refold_all(self.refold.values(), self.now)
        new = {id(story) for story in self.new}
        stored = [story for key, story in {**self.changed, **self.refold}.items()
                  if key not in new or key in self.refold]
        for story in stored:
            story.updated_at = self.now  # bulk_update leaves auto_now alone
        if stored:  # one UPDATE (threats/sql.py: Django's bulk_update compiles a CASE per field and row)
            state = {story.pk: {name: getattr(story, attname) for name, attname in STORY_STATE.items()}
                     for story in stored}
            sql.update_each(Story, state, "1 = 1", [], STORY_ID)
        touched = {id(story): story for story in [*self.new, *stored]}.values()
        return [(story, str(story.flagged_threat_id)) for story in touched if getattr(story, "newly_flagged", False)]


# What stitching changes on a stored story: {field: the attribute holding its value}.
STORY_STATE = {name: name for name in ("tactics", "stage_count", "alert_severity", "severity", "threat_count",
                                       "first_seen", "last_seen", "flagged_at", "updated_at")} | {
    "flagged_threat": "flagged_threat_id"}
STORY_ID = sql.Columns(Story, ["id"])


def _open_stories(placed):
    """The stored stories of the batch's entities whose window may hold one of its alerts, locked.
    One query on the entity values (index story_entity_newest); customer and kind are matched here."""
    keys = {(threat.customer_id, kind, value) for threat, kind, value in placed}
    times = [threat.occurred_at for threat, _kind, _value in placed]
    found = Story.objects.select_for_update().filter(
        entity__in={value for _customer, _kind, value in keys}, customer_id__in={c for c, _kind, _value in keys},
        last_seen__gte=min(times) - WINDOW, first_seen__lte=max(times) + WINDOW)
    return [story for story in found if (story.customer_id, story.entity_kind, story.entity) in keys]


def _refold_all(stories, now):
    """Re-read these stories' links (one query) in time order and set their state."""
    links = {}
    for link in StoryThreat.objects.filter(story__in=[s.pk for s in stories]).only(
            "story_id", "threat_id", "occurred_at", "tactics", "severity", "counts"):
        links.setdefault(link.story_id, []).append(link)
    for story in stories:
        if _set_from_links(story, links.get(story.pk, []), now):
            story.newly_flagged = True


def restitch(threat, now=None):
    """After triage: a threat dismissed (or no longer dismissed) counts again or no more in its
    stories, which are re-read; one never stitched that now counts joins its stories. Returns
    what `stitch` returns."""
    links = list(StoryThreat.objects.filter(threat=threat).select_related("story"))
    if not links:
        return stitch([threat], now)
    counts, flagged = stitchable(threat), []
    for link in links:
        if link.counts != counts:
            link.counts = counts
            link.save(update_fields=["counts"])
            if _refold(link.story, now or timezone.now()):
                flagged.append((link.story, str(link.story.flagged_threat_id)))
    return flagged


def stories_of(threat_ids):
    """Ids of the stories these threats are in (before retention deletes them)."""
    return set(StoryThreat.objects.filter(threat_id__in=threat_ids).values_list("story_id", flat=True))


def drop_empty(story_ids):
    """Delete those of these stories that have no alert left (retention deleted them all)."""
    if story_ids:
        Story.objects.filter(pk__in=story_ids).exclude(links__isnull=False).delete()


def _refold(story, now):
    """Read one story's links again in time order and save it; True when this flagged it."""
    links = list(StoryThreat.objects.filter(story=story).only("threat_id", "occurred_at", "tactics", "severity", "counts"))
    newly = _set_from_links(story, links, now)
    story.save()
    return newly


def _set_from_links(story, links, now):
    """The story's state from all its links, folded in time order; True when this flagged it."""
    progress = progression(links)
    counting = [link.occurred_at for link in links if link.counts] or [story.first_seen]
    _apply(story, progress, threat_count=sum(link.counts for link in links),
           first_seen=min(counting), last_seen=max(counting))
    return _flag(story, progress, now)


def _apply(story, progress, **fields):
    story.tactics, story.stage_count = progress.reached, len(progress.reached)
    story.alert_severity = progress.alert_severity
    story.severity, _reason = story_severity(progress.alert_severity, progress.reached)
    for name, value in fields.items():
        setattr(story, name, value)


def _flag(story, progress, now):
    """Flag the story the first time it progressed; a flag, once set, stays (its event went out)."""
    if story.flagged_at is not None or progress.flagged_by is None:
        return False
    story.flagged_at, story.flagged_threat_id = now, progress.flagged_by
    return True


# --- What the event and the pages say ---------------------------------------------------------------------


def flag_payload(story):
    """The `story` of a `story.flagged` event (docs/stories.md)."""
    from django.urls import reverse

    return {"id": story.pk, "entity_kind": story.entity_kind, "entity": story.entity, "severity": story.severity or None,
            "stage_count": story.stage_count, "tactics": [{"id": t["id"], "name": t["name"]} for t in story.tactics],
            "flagged_at": story.flagged_at.isoformat() if story.flagged_at else None,
            "url": reverse("stories:detail", args=[story.pk])}
