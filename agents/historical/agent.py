"""Historical agent: how did analysts resolve similar threats before?"""

from datetime import timedelta

from django.db.models import Q

from threats.choices import Disposition
from threats.models import Threat

from ..base import Agent, AgentResult, field_ref, observable, threat_ref

LOOKBACK = timedelta(days=30)
MAX_CITED = 50
IDENTITY_FIELDS = ("src_ip", "user", "host")


class HistoricalAgent(Agent):
    kind = "historical"

    def gather(self, threat):
        since = threat.received_at - LOOKBACK
        same_entity = Q()
        for name in IDENTITY_FIELDS:
            value = observable(threat, name)
            if isinstance(value, str):
                same_entity |= Q(**{f"observables__{name}": value})
        similar = Q(customer_id=threat.customer_id, threat_type=threat.threat_type) | same_entity
        rows = (
            Threat.objects.filter(similar, received_at__gte=since, received_at__lte=threat.received_at)
            .exclude(pk=threat.pk)
            .order_by("-received_at")
            .values("id", "customer_id", "threat_type", "status", "disposition", "severity", "observables")
        )
        return list(rows[:MAX_CITED])

    def analyze(self, threat, past):
        result = AgentResult(summary="", confidence=min(0.95, 0.45 + 0.05 * len(past)))
        if not past:
            result.summary = f"No similar threats in the last {LOOKBACK.days} days."
            result.find(result.summary)
            return result
        counts = {d: sum(1 for p in past if p["disposition"] == d) for d in Disposition.values}
        closed = sum(counts.values())
        cited = [threat_ref(p["id"]) for p in past]
        result.find(f"{len(past)} similar threats in the last {LOOKBACK.days} days.", *cited)
        result.data = {"similar": len(past), "dispositions": counts, "cited": [str(p["id"]) for p in past]}
        self._score_dispositions(result, counts, past)
        self._score_repeat_entities(result, threat, past)
        result.summary = (
            f"{len(past)} similar threats in {LOOKBACK.days} days; analysts closed {closed}: "
            f"{counts['true_positive']} true positive, {counts['benign_true_positive']} benign, "
            f"{counts['false_positive']} false positive."
        )
        return result

    def _score_dispositions(self, result, counts, past):
        def refs(disposition):
            return [threat_ref(p["id"]) for p in past if p["disposition"] == disposition]

        if counts["true_positive"]:
            points = min(15, 5 * counts["true_positive"])
            result.score(points, f"{counts['true_positive']} similar threats were confirmed true positives",
                         *refs("true_positive"))
        if counts["false_positive"]:
            points = -min(15, 5 * counts["false_positive"])
            result.score(points, f"{counts['false_positive']} similar threats were false positives",
                         *refs("false_positive"))

    def _score_repeat_entities(self, result, threat, past):
        for name in IDENTITY_FIELDS:
            value = observable(threat, name)
            seen = [p for p in past if isinstance(value, str) and p["observables"].get(name) == value]
            if seen:
                result.find(f"{name} {value} appeared in {len(seen)} earlier threats.", field_ref(name),
                            *[threat_ref(p["id"]) for p in seen])
                result.score(min(10, 3 * len(seen)), f"repeat {name} {value}", field_ref(name))
