"""Context agent: business context of the customer at the time of the signal."""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Q

from threats.choices import ThreatType, Tier
from threats.models import ContextItem

from ..base import Agent, AgentResult

TIER_POINTS = {Tier.ENTERPRISE: 5, Tier.BUSINESS: 2, Tier.STARTER: 0}
# Human-driven activity outside business hours is more suspicious than traffic-shaped activity.
OFF_HOURS_TYPES = {ThreatType.DEVICE_COMPROMISE, ThreatType.ANOMALY_DETECTION, ThreatType.GEO_ANOMALY}


class ContextAgent(Agent):
    kind = "context"

    def gather(self, threat):
        when = threat.occurred_at
        valid = Q(valid_from__lte=when) & (Q(valid_until__isnull=True) | Q(valid_until__gte=when))
        mine = Q(customer_id=threat.customer_id) | Q(customer__isnull=True)
        items = ContextItem.objects.filter(valid & mine).order_by("-valid_from")[:50]
        return [i for i in items if not i.threat_types or threat.threat_type in i.threat_types]

    def analyze(self, threat, items):
        customer = threat.customer
        result = AgentResult(summary="", confidence=0.7)
        rule = f"customer:{customer.slug}"
        if TIER_POINTS.get(customer.tier):
            result.score(TIER_POINTS[customer.tier], f"{customer.get_tier_display()} tier customer", f"{rule}.tier")
        local = _local_time(threat.occurred_at, customer.timezone)
        in_hours = customer.business_hours_start <= local.hour < customer.business_hours_end and local.weekday() < 5
        hours_text = f"{local:%a %H:%M} {customer.timezone}"
        result.find(f"Signal at {hours_text}, {'inside' if in_hours else 'outside'} business hours.",
                    "signal.occurred_at", f"{rule}.business_hours")
        if not in_hours and threat.threat_type in OFF_HOURS_TYPES:
            result.score(5, f"outside business hours ({hours_text})", "signal.occurred_at", f"{rule}.business_hours")
        for item in items:
            result.find(f"{item.get_kind_display()}: {item.title}", f"context_item:{item.pk}")
            if item.kind == "advisory":
                result.score(5, f"active advisory: {item.title}", f"context_item:{item.pk}")
        result.summary = (
            f"{customer.get_tier_display()} customer; signal {'inside' if in_hours else 'outside'} business hours; "
            f"{len(items)} relevant context item(s)."
        )
        result.data = {"business_hours": in_hours, "local_time": local.isoformat()}
        return result


def _local_time(moment: datetime, zone):
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return moment
