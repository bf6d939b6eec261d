"""Server-rendered pages (dashboard, threat detail) and the health/readiness probes."""

import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from . import services
from .choices import Scenario, Severity, Status, ThreatType

log = logging.getLogger(__name__)
FEED_SIZE = 25


@login_required
def dashboard(request):
    try:
        threats = services.visible_threats(request.user)
    except services.AccessDenied as exc:
        raise PermissionDenied(str(exc)) from None
    context = {
        # Read the seq first: the page's JS resumes from it, so nothing between render and connect is lost.
        "latest_seq": services.latest_seq(),
        "recent": threats.order_by("-received_at", "-id")[:FEED_SIZE],
        "threat_types": ThreatType.choices,
        "labels": {"types": dict(ThreatType.choices), "statuses": dict(Status.choices)},
        "scenarios": Scenario.choices,
        "severities": Severity.values,
        "can_trigger": request.user.has_perm(services.TRIGGER_PERMISSION),
    }
    return render(request, "threats/dashboard.html", context)


@login_required
def threat_detail(request, threat_id):
    latest_seq = services.latest_seq()
    try:
        threat = services.get_threat_for_user(request.user, threat_id)
    except services.AccessDenied as exc:
        raise PermissionDenied(str(exc)) from None
    except services.NotFound:
        raise Http404("Threat not found") from None
    context = {
        "latest_seq": latest_seq,
        "threat": threat,
        "agent_runs": threat.agent_runs.all(),
        "notes": threat.notes.select_related("author"),
        "events": threat.events.order_by("seq"),
    }
    return render(request, "threats/detail.html", context)


@never_cache
def health(request):
    """Liveness: the process answers. Checks no dependency on purpose."""
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request):
    """Readiness: the database (and Redis, when configured) really answer."""
    problems = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        problems["database"] = str(exc)
    if settings.REDIS_URL:
        problems.update(_redis_problems())
    if problems:
        log.warning("not ready: %s", problems)
        return JsonResponse({"status": "unavailable", "problems": problems}, status=503)
    return JsonResponse({"status": "ready"})


def _redis_problems():
    import redis

    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2).ping()
    except Exception as exc:
        return {"redis": str(exc)}
    return {}


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error."}, status=500)
    return render(request, "500.html", status=500)
