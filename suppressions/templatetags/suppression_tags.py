"""`{% suppress_similar threat %}`: the "Suppress similar…" form of a closed false positive's detail
page, prefilled from the threat (docs/suppressions.md). Kept here so the threat page needs one line."""

from datetime import timedelta

from django import template
from django.utils import timezone

from threats import access
from threats.choices import CLOSED_STATUSES, Disposition

from ..models import ENTITY_FIELDS
from ..services import MAX_EXPIRY_DAYS, MAX_PREVIEW_DAYS, PREVIEW_DAYS

register = template.Library()
DEFAULT_EXPIRY_DAYS = 30
LABELS = {"src_ip": "Source address", "dst_ip": "Destination address", "user": "User", "host": "Host"}


@register.inclusion_tag("suppressions/_propose.html", takes_context=True)
def suppress_similar(context, threat):
    user = context["request"].user
    show = proposable(user, threat)
    # Whoever sees the threat sees what hid it: the suppression is of the threat's own customer.
    found = threat.suppression if threat.suppression_id else None
    return {"threat": threat, "show": show, "analyst": may_propose(user, threat), **(prefill(threat) if show else {}),
            "suppression": found, "suppression_state": found.state(timezone.now()) if found else None}


def may_propose(user, threat):
    return access.has_permission(user, access.TRIAGE_PERMISSION) and access.can_write_for_customer(user, threat.customer_id)


def proposable(user, threat):
    """A closed false positive with a rule, seen by an analyst who may write for its customer."""
    return (threat.status in CLOSED_STATUSES and threat.disposition == Disposition.FALSE_POSITIVE and bool(threat.rule)
            and not threat.suppressed and may_propose(user, threat))


def prefill(threat):
    today = timezone.now().date()
    observed = threat.observables or {}
    entities = [{"name": name, "label": LABELS[name], "value": observed[name]} for name in ENTITY_FIELDS
                if isinstance(observed.get(name), str) and observed.get(name)]
    return {
        "entities": entities,
        # The exact values for the API, as JSON with every non-ASCII character escaped: an attribute
        # would carry a hidden character raw into the page (threats/hidden_text.py).
        "proposal": {"customer": threat.customer.slug, "rule": threat.rule,
                     "entities": {e["name"]: e["value"] for e in entities}},
        "expires": today + timedelta(days=DEFAULT_EXPIRY_DAYS),
        "expires_min": today + timedelta(days=1),
        "expires_max": today + timedelta(days=MAX_EXPIRY_DAYS - 1),
        "days": PREVIEW_DAYS, "max_days": MAX_PREVIEW_DAYS,
    }
