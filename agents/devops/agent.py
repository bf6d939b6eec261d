"""DevOps agent: could a deployment, scaling step, outage or maintenance explain the signal?"""

from datetime import timedelta

from django.db.models import Q

from threats.choices import ThreatType
from threats.models import InfraEvent

from ..base import Agent, AgentResult

WINDOW_BEFORE = timedelta(minutes=60)
WINDOW_AFTER = timedelta(minutes=5)
# Traffic-shaped signals that infrastructure changes commonly cause.
EXPLAINABLE = {ThreatType.RATE_LIMIT_BREACH, ThreatType.ANOMALY_DETECTION, ThreatType.BOT_TRAFFIC}


class DevOpsAgent(Agent):
    kind = "devops"

    def gather(self, threat):
        start, end = threat.occurred_at - WINDOW_BEFORE, threat.occurred_at + WINDOW_AFTER
        overlapping = Q(started_at__lte=end) & (Q(ended_at__isnull=True, started_at__gte=start) | Q(ended_at__gte=start))
        mine = Q(customer_id=threat.customer_id) | Q(customer__isnull=True)
        return list(InfraEvent.objects.filter(mine & overlapping).order_by("started_at")[:20])

    def analyze(self, threat, infra):
        result = AgentResult(summary="", confidence=0.7 if infra else 0.6)
        if not infra:
            result.summary = "No infrastructure change in the hour before the signal."
            result.find(result.summary)
            return result
        for event in infra:
            minutes = round((threat.occurred_at - event.started_at).total_seconds() / 60)
            when = f"{minutes} min before" if minutes >= 0 else f"{-minutes} min after"
            result.find(f"{event.get_kind_display()} {when} the signal: {event.description}",
                        f"infra_event:{event.pk}")
        if threat.threat_type in EXPLAINABLE:
            refs = [f"infra_event:{e.pk}" for e in infra]
            result.score(-10 * min(len(infra), 2), f"{len(infra)} infrastructure change(s) may explain the traffic",
                         *refs)
            result.summary = f"{len(infra)} infrastructure change(s) in the window may explain this signal."
        else:
            result.summary = f"{len(infra)} infrastructure change(s) in the window; none explains a {threat.threat_type}."
        result.data = {"infra_events": [e.pk for e in infra]}
        return result
