"""The suppressions page (docs/suppressions.md): active, expired and revoked suppressions of the
customers the user sees, with hits, author and expiry, and a Revoke button for analysts. Text a
user wrote (rule, values, reason) is only ever escaped by the template."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from threats import access, services as threat_services
from threats.views import _analyst, _common

from . import services
from .api import _by_state

STATES = ("active", "expired", "revoked", "all")
PAGE_LIMIT = 500


@login_required
def suppression_list(request):
    user = _analyst(request)
    state = request.GET.get("state", "active")
    state = state if state in STATES else "active"
    now = timezone.now()
    found = _by_state(services.visible_suppressions(user), state, now)[:PAGE_LIMIT]
    context = {
        **_common(request), "state": state, "states": STATES, "latest_seq": threat_services.latest_seq(),
        "rows": [{"s": s, "state": s.state(now), "entities": s.entities()} for s in found],
        "can_revoke": access.has_permission(user, access.TRIAGE_PERMISSION),
    }
    return render(request, "suppressions/list.html", context)
