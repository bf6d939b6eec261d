"""The tenant matrix (issue 18, docs/security.md "Multi-tenancy"): every URL pattern (the URL
resolver walked, the django-ninja API and the admin included), every admin model, every WebSocket
client message and every API key scope, for each role, against customer A's objects ("own") and
customer B's ("other"): the expected answer, in one table.

The cases are generated from the URL conf, the admin registry, the consumer's message table and
APIKey.Scope, so a new endpoint, model, message or scope without a row here fails. Each case sends a
real request and checks its status (or the admin page it lands on); every answer to a principal of
customer A is also searched for customer B's data (names, ids, titles) that the request did not
itself contain.

Roles: anonymous; an API key of each scope bound to A; an analyst scoped to A (staff, so the admin
is reached); an unscoped staff analyst; a superuser. Requests run in a rolled-back savepoint, so a
write of one case never changes the next.
"""

import importlib
from datetime import timedelta
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from handoff.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from stories.models import Story, StoryThreat
from suppressions.models import Suppression
from socproject.asgi import application
from tests import factories
from threats import apikeys, consumers
from threats.api import api
from threats.models import APIKey, Campaign, ContextItem, Note, ThreatEvent, ThreatGroup, UserAccess

KEY_ROLES = tuple(f"key:{scope}" for scope in APIKey.Scope.values)
ROLES = ("anonymous", *KEY_ROLES, "scoped", "staff", "superuser")
SCOPED_ROLES = {*KEY_ROLES, "scoped"}  # principals of customer A only: B's data must never reach them


# --- Discovery: what exists ----------------------------------------------------------------------------------


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def _api_methods():
    """{operation name: its HTTP method}: django-ninja routes the methods of one path through one pattern."""
    return {op.view_func.__name__: method for _prefix, router in api._routers
            for view in router.path_operations.values() for op in view.operations for method in op.methods}


def discovered_endpoints():
    """Every endpoint of the URL conf: `route` for a page or an admin view, `METHOD route` for an API
    operation, and its URL name."""
    methods, found = _api_methods(), {}
    for route, name in _walk(get_resolver().url_patterns):
        if name == "app_list":
            route = "admin/<app_label>/"  # its regex lists the apps in registration order
        found[f"{methods[name]} {route}" if name in methods else route] = name
    return found


def _admin_view(route, name):
    """(model label, view kind) of a model's admin URL, else None. The unnamed `<id>/` URL is "object"."""
    for model in admin.site._registry:
        prefix = f"admin/{model._meta.app_label}/{model._meta.model_name}/"
        if route.startswith(prefix):
            stem = f"{model._meta.app_label}_{model._meta.model_name}_"
            return model._meta.label_lower, name.removeprefix(stem) if name else "object"
    return None


def admin_models():
    return {model._meta.label_lower for model in admin.site._registry}


# --- The world: customer A (own) and customer B (other) ------------------------------------------------------------

B_MARKERS_TEXT = ("Globex Secret", "globex-secret", "GLOBEX-ONLY", "globex-gina")


@pytest.fixture
def world(db, browser):
    return _build_world(browser)


def _build_world(browser):
    acme, globex = factories.make_customer(name="Acme"), factories.make_customer(name="Globex Secret")
    own, other = (_tenant(customer, label) for customer, label in ((acme, "ACME-OWN"), (globex, "GLOBEX-ONLY")))
    keys = {f"key:{scope}": apikeys.issue(f"acme {scope}", [scope], customer=acme)[1] for scope in APIKey.Scope.values}
    users = {
        "scoped": _person("ann", "analyst", staff=True, customers=[acme]),
        "staff": _person("stan", "analyst", staff=True),
        "superuser": get_user_model().objects.create_superuser("root", "root@example.com", "pw-root"),
    }
    own["user"], other["user"] = users["scoped"], _person("globex-gina", "analyst", customers=[globex])
    own["group"], other["group"] = Group.objects.get(name="analyst"), Group.objects.get(name="admin")
    own["apikey"], other["apikey"] = APIKey.objects.get(name="acme read"), apikeys.issue(
        "GLOBEX-ONLY key", ["read"], customer=globex)[0]
    return {"own": own, "other": other, "keys": keys, "users": users, "browser": browser,
            "sessions": _sessions(browser, users)}


def _tenant(customer, label):
    threat = factories.make_threat(customer=customer, analyse=False, title=f"{label} alert",
                                   source="generic", source_ref=f"{label}-ref-1")
    Note.objects.create(threat=threat, body=f"{label} note")
    now = timezone.now()
    group = ThreatGroup.objects.create(customer=customer, source="generic", key=f"{label}-key", title=f"{label} group",
                                       head=threat, member_count=1, first_seen=now, last_seen=now)
    campaign = Campaign.objects.create(customer=customer, key=f"user:{label}-user", title=f"{label} campaign",
                                       first_seen=now, last_seen=now, threat_count=1)
    # Webhooks are not a customer's: an endpoint may receive every customer's threats (superusers only).
    endpoint = WebhookEndpoint.objects.create(name=f"{label} SOAR", url="https://soar.example.com/hook",
                                              on_closed=True)
    delivery, dead = (WebhookDelivery.objects.create(endpoint=endpoint, event="threat.closed", threat_id=threat.pk,
                                                     payload={}, status=status, next_attempt_at=now)
                      for status in (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD))
    suppression = Suppression.objects.create(customer=customer, rule=f"rule:{label}", reason=f"{label} scanner",
                                             expires_at=now + timedelta(days=7))
    story = Story.objects.create(customer=customer, entity_kind="host", entity=f"{label}-host", first_seen=now,
                                 last_seen=now, threat_count=1, flagged_at=now)
    StoryThreat.objects.create(story=story, threat=threat, occurred_at=now)
    return {
        "suppression": suppression, "story": story,
        "webhookendpoint": endpoint, "webhookdelivery": delivery, "deadletter": dead,
        "customer": customer, "threat": threat, "threatgroup": group, "campaign": campaign,
        "threatevent": ThreatEvent.objects.filter(threat=threat).first(),
        "infraevent": factories.make_infra_event(customer=customer, description=f"{label} release"),
        "contextitem": ContextItem.objects.create(customer=customer, title=f"{label} context", valid_from=now),
    }


def _person(name, role, staff=False, customers=None):
    user = get_user_model().objects.create_user(username=name, password="pw-" + name, is_staff=staff)
    user.groups.add(Group.objects.get(name=role))
    if customers is not None:
        UserAccess.objects.create(user=user).customers.set(customers)
    return get_user_model().objects.get(pk=user.pk)


def _b_markers(world):
    other = world["other"]
    return (*B_MARKERS_TEXT, str(other["threat"].pk), other["apikey"].prefix)


@pytest.fixture(scope="module")
def browser():
    """One test client for every case: each new one would build the middleware again (whitenoise
    scans the static files), which made up half of this module's time."""
    return Client()


def _client(world, role):
    client = world["browser"]
    client.cookies.clear()
    if role in world["sessions"]:
        client.cookies[settings.SESSION_COOKIE_NAME] = world["sessions"][role]
    headers = {"HTTP_X_API_KEY": world["keys"][role]} if role in world["keys"] else {}
    return client, headers


def _sessions(browser, users):
    sessions = {}
    for role, user in users.items():
        browser.cookies.clear()
        browser.force_login(user)
        sessions[role] = browser.cookies[settings.SESSION_COOKIE_NAME].value
    return sessions


# --- Requests: one per endpoint, for A's objects ("own") or B's ("other") ---------------------------------------


def GET(path):
    return ("get", path, None)


def POST(path, body=None, form=False):
    return ("post_form" if form else "post", path, body or {})


def PATCH(path, body):
    return ("patch", path, body)


def DELETE(path):
    return ("delete", path, {})


def _fill(value, side):
    if isinstance(value, str):
        return value.format(**side)
    if isinstance(value, list):
        return [_fill(item, side) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, side) for key, item in value.items()}
    return value


def _placeholders(world, name, model=None):
    side = world[name]
    values = {"threat": side["threat"].pk, "group": side["threatgroup"].pk, "customer": side["customer"].slug,
              "campaign": side["campaign"].pk, "suppression": side["suppression"].pk, "story": side["story"].pk,
              "expires": (timezone.now() + timedelta(days=7)).isoformat(),
              "threat_type": ContentType.objects.get_for_model(side["threat"]).pk,
              "app": "threats" if name == "own" else "auth"}
    if model is not None:
        values["object"] = side[model.split(".")[1]].pk
    return values


def _send(client, headers, spec, side):
    method, path, body = spec
    path = _fill(path, side)
    if method == "get":
        return client.get(path, **headers), path
    if method == "post_form":
        return client.post(path, _fill(body, side), **headers), path + json.dumps(_fill(body, side))
    payload = json.dumps(_fill(body, side))
    call = getattr(client, method)
    return call(path, data=payload, content_type="application/json", **headers), path + payload


def _answer(response, kind=None):
    """The response as the table writes it: a status, or where an admin page sent the caller."""
    status = response.status_code
    if status in (301, 302):
        where = response["Location"]
        if "/login/" in where:
            return "login"
        if where == "/admin/":
            return "to-index"  # the admin's "does not exist (perhaps it was deleted?)"
        if where.endswith("/change/"):
            return "to-change"
        return status
    if kind == "change" and status == 200:
        return "edit" if b'name="_save"' in response.content else "view"
    return status


def _still_there(world, side, label):
    obj = world[side][label.split(".")[1]]
    return type(obj).objects.filter(pk=obj.pk).exists()


def _leaks(world, response, request_text):
    body = response.content.decode(errors="replace")
    return [marker for marker in _b_markers(world) if marker in body and marker not in request_text]


# --- The table ----------------------------------------------------------------------------------------------------
#
# A cell is the answer for A's object and B's object alike, or a pair (own, other). Answers: an HTTP
# status; "login" (sent to a login page); "to-index" (the admin's "does not exist", or its login page
# for a logged-in user); "to-change" (an admin object URL forwarding to its change page); "edit" /
# "view" (an admin change page with or without a Save button); "deleted" (an admin delete done).
# WebSocket answers: "refused" (handshake refused), or the reply's type ("pong", "watching", "error",
# "ignored" for none), and for a resume the customers whose events were replayed ("A", "A+B").

NOBODY = ("login",) * (1 + len(KEY_ROLES))  # the admin and the pages take no API key: as anonymous
ALERT = {"title": "matrix alert", "occurred_at": "2026-11-20T13:00:00Z", "customer": "{customer}", "id": "matrix-1"}
PROPOSAL = {"customer": "{customer}", "rule": "rule:matrix"}
SUPPRESSION = {**PROPOSAL, "reason": "matrix scanner", "expires_at": "{expires}"}

MATRIX = {
    # endpoint                                       request                                       anonymous ingest read trigger scoped staff superuser
    # Probes and public documents: no customer data.
    "health":                                        (GET("/health"),                               200, 200, 200, 200, 200, 200, 200),
    "ready":                                         (GET("/ready"),                                200, 200, 200, 200, 200, 200, 200),
    "metrics":                                       (GET("/metrics"),                              200, 200, 200, 200, 200, 200, 200),
    "favicon.ico":                                   (GET("/favicon.ico"),                          301, 301, 301, 301, 301, 301, 301),
    "api/openapi.json":                              (GET("/api/openapi.json"),                     200, 200, 200, 200, 200, 200, 200),
    "api/docs":                                      (GET("/api/docs"),                             200, 200, 200, 200, 200, 200, 200),
    "api/":                                          (GET("/api/"),                                 404, 404, 404, 404, 404, 404, 404),
    # The API: keys by scope; a scoped principal finds B's objects missing.
    "GET api/threats":                               (GET("/api/threats"),                          401, 403, 200, 403, 200, 200, 200),
    "GET api/threats/<uuidstr:threat_id>":           (GET("/api/threats/{threat}"),                 401, 403, (200, 404), 403, (200, 404), 200, 200),
    "PATCH api/threats/<uuidstr:threat_id>":         (PATCH("/api/threats/{threat}", {"status": "acknowledged"}),
                                                                                                    401, 401, 401, 401, (200, 404), 200, 200),
    "POST api/threats/trigger":                      (POST("/api/threats/trigger", {"customer": "{customer}", "threat_type": "bot_traffic"}),
                                                                                                    401, 403, 403, (202, 403), (202, 403), 202, 202),
    "POST api/threats/bulk":                         (POST("/api/threats/bulk", {"ids": ["{threat}"], "status": "acknowledged"}),
                                                                                                    401, 401, 401, 401, 200, 200, 200),
    "POST api/threats/<uuidstr:threat_id>/notes":    (POST("/api/threats/{threat}/notes", {"body": "looked at it"}),
                                                                                                    401, 401, 401, 401, (201, 404), 201, 201),
    "GET api/analytics":                             (GET("/api/analytics"),                        401, 403, 200, 403, 200, 200, 200),
    "GET api/events":                                (GET("/api/events"),                           401, 403, 200, 403, 200, 200, 200),
    "GET api/queue":                                 (GET("/api/queue"),                            401, 403, 200, 403, 200, 200, 200),
    # An ingest key bound to A refuses an alert naming B (422: every item failed).
    "POST api/ingest/<format>":                      (POST("/api/ingest/generic", ALERT),           401, (202, 422), 403, 403, 401, 401, 401),
    "GET api/groups":                                (GET("/api/groups"),                           401, 403, 200, 403, 200, 200, 200),
    "GET api/groups/<int:group_id>":                 (GET("/api/groups/{group}"),                   401, 403, (200, 404), 403, (200, 404), 200, 200),
    "GET api/threats/<uuidstr:threat_id>/export":    (GET("/api/threats/{threat}/export?format=markdown"),
                                                                                                    401, 403, (200, 404), 403, (200, 404), 200, 200),
    "GET api/campaigns/<int:campaign_id>/export":    (GET("/api/campaigns/{campaign}/export"),     401, 403, (200, 404), 403, (200, 404), 200, 200),
    "GET api/stories":                               (GET("/api/stories"),                          401, 403, 200, 403, 200, 200, 200),
    "GET api/stories/<int:story_id>":                (GET("/api/stories/{story}"),                  401, 403, (200, 404), 403, (200, 404), 200, 200),
    "GET api/stories/<int:story_id>/export":         (GET("/api/stories/{story}/export?format=markdown"),
                                                                                                    401, 403, (200, 404), 403, (200, 404), 200, 200),
    # Suppressions: analysts propose and save with their session (never a key); B's customer reads as unknown.
    "POST api/suppressions/preview":                 (POST("/api/suppressions/preview", PROPOSAL),  401, 401, 401, 401, (200, 400), 200, 200),
    "POST api/suppressions":                         (POST("/api/suppressions", SUPPRESSION),       401, 401, 401, 401, (201, 400), 201, 201),
    "GET api/suppressions":                          (GET("/api/suppressions"),                     401, 403, 200, 403, 200, 200, 200),
    "GET api/suppressions/<int:suppression_id>":     (GET("/api/suppressions/{suppression}"),       401, 403, (200, 404), 403, (200, 404), 200, 200),
    "DELETE api/suppressions/<int:suppression_id>":  (DELETE("/api/suppressions/{suppression}"),    401, 401, 401, 401, (200, 404), 200, 200),
    # Pages.
    "accounts/login/":                               (GET("/accounts/login/"),                      200, 200, 200, 200, 200, 200, 200),
    "accounts/logout/":                              (POST("/accounts/logout/", form=True),         "login", "login", "login", "login", "login", "login", "login"),
    "":                                              (GET("/"),                                     *NOBODY, 200, 200, 200),
    "threats/":                                      (GET("/threats/"),                             *NOBODY, 200, 200, 200),
    "queue/":                                        (GET("/queue/"),                               *NOBODY, 200, 200, 200),
    "suppressions/":                                 (GET("/suppressions/?state=all"),              *NOBODY, 200, 200, 200),
    "threats/<uuid:threat_id>/":                     (GET("/threats/{threat}/"),                    *NOBODY, (200, 404), 200, 200),
    "stories/":                                      (GET("/stories/"),                             *NOBODY, 200, 200, 200),
    "stories/<int:story_id>/":                       (GET("/stories/{story}/"),                     *NOBODY, (200, 404), 200, 200),
    # The admin site.
    "admin/":                                        (GET("/admin/"),                               *NOBODY, 200, 200, 200),
    "admin/login/":                                  (GET("/admin/login/"),                         200, 200, 200, 200, "to-index", "to-index", "to-index"),
    "admin/logout/":                                 (POST("/admin/logout/", form=True),            "to-index", "to-index", "to-index", "to-index", "login", "login", "login"),
    "admin/password_change/":                        (GET("/admin/password_change/"),               *NOBODY, 200, 200, 200),
    "admin/password_change/done/":                   (GET("/admin/password_change/done/"),          *NOBODY, 200, 200, 200),
    "admin/autocomplete/":                           (GET("/admin/autocomplete/"),                  *NOBODY, 403, 403, 403),
    "admin/jsi18n/":                                 (GET("/admin/jsi18n/"),                        *NOBODY, 200, 200, 200),
    "admin/r/<path:content_type_id>/<path:object_id>/": (GET("/admin/r/{threat_type}/{threat}/"),   *NOBODY, 404, 404, 404),
    # own: the threats app, other: the auth app (users and roles: unscoped staff with the permission).
    "admin/<app_label>/":                            (GET("/admin/{app}/"),                        *NOBODY, (200, 404), (200, 404), 200),
    "admin/(?P<url>.*)$":                            (GET("/admin/no-such-page/"),                  *NOBODY, 404, 404, 404),
}

# Every registered admin model: its views by kind. Analysts hold view/add/change on threats, context
# and infrastructure, view elsewhere, no delete; a scoped analyst's B objects do not exist for it.
DELIVERY_RECORDS = {  # webhook deliveries: superusers read and delete them, nobody writes one by hand
    "changelist":      (*NOBODY, 403, 403, 200),
    "add":             (*NOBODY, 403, 403, 403),
    "change":          (*NOBODY, 403, 403, "view"),
    "delete":          (*NOBODY, 403, 403, "deleted"),
    "history":         (*NOBODY, 403, 403, 200),
    "object":          (*NOBODY, "to-change", "to-change", "to-change"),
}
ADMIN_MODELS = {
    # model                kind               anonymous + keys  scoped                  staff        superuser
    "threats.threat": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 403),                 # threats come from signals, never from a form
        "change":          (*NOBODY, ("edit", "to-index"), "edit", "edit"),  # triage fields read-only; actions
        "delete":          (*NOBODY, 403, 403, 403),                 # its events are append-only
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.customer": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 200),
        "change":          (*NOBODY, ("view", "to-index"), "view", "edit"),
        "delete":          (*NOBODY, 403, 403, 200),                 # 200: refused, its threats are protected
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.infraevent": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 200, 200, 200),
        "change":          (*NOBODY, ("edit", "to-index"), "edit", "edit"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.contextitem": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 200, 200, 200),
        "change":          (*NOBODY, ("edit", "to-index"), "edit", "edit"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.threatevent": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 403),
        "change":          (*NOBODY, ("view", "to-index"), "view", "view"),
        "delete":          (*NOBODY, 403, 403, 403),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.apikey": {
        "changelist":      (*NOBODY, 403, 403, 200),
        "add":             (*NOBODY, 403, 403, 200),
        "change":          (*NOBODY, 403, 403, "edit"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (403, "to-index"), 403, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.threatgroup": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 403),
        "change":          (*NOBODY, ("view", "to-index"), "view", "view"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "threats.campaign": {
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 403),
        "change":          (*NOBODY, ("view", "to-index"), "view", "view"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "stories.story": {                                               # built by stitching from verdicts
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 403),
        "change":          (*NOBODY, ("view", "to-index"), "view", "view"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "suppressions.suppression": {                                    # saved through the preview, revoked by an action
        "changelist":      (*NOBODY, 200, 200, 200),
        "add":             (*NOBODY, 403, 403, 403),
        "change":          (*NOBODY, ("view", "to-index"), "view", "view"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, (200, "to-index"), 200, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    # Webhooks: superusers only (an endpoint may receive every customer's threats); deliveries and dead
    # letters are records, read-only, deletable.
    "handoff.webhookendpoint": {
        "changelist":      (*NOBODY, 403, 403, 200),
        "add":             (*NOBODY, 403, 403, 200),
        "change":          (*NOBODY, 403, 403, "edit"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, 403, 403, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
    "handoff.webhookdelivery": DELIVERY_RECORDS,
    "handoff.deadletter": DELIVERY_RECORDS,  # the same records, those out of attempts
    "auth.user": {
        "changelist":      (*NOBODY, 403, 403, 200),
        "add":             (*NOBODY, 403, 403, 200),
        "change":          (*NOBODY, 403, 403, "edit"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, 403, 403, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
        "password_change": (*NOBODY, 403, 403, 200),
    },
    "auth.group": {
        "changelist":      (*NOBODY, 403, 403, 200),
        "add":             (*NOBODY, 403, 403, 200),
        "change":          (*NOBODY, 403, 403, "edit"),
        "delete":          (*NOBODY, 403, 403, "deleted"),
        "history":         (*NOBODY, 403, 403, 200),
        "object":          (*NOBODY, "to-change", "to-change", "to-change"),
    },
}
ADMIN_REQUESTS = {
    "changelist": GET("/admin/{app_label}/{model_name}/"),
    "add": GET("/admin/{app_label}/{model_name}/add/"),
    "change": GET("/admin/{app_label}/{model_name}/{object}/change/"),
    "delete": POST("/admin/{app_label}/{model_name}/{object}/delete/", {"post": "yes"}, form=True),
    "history": GET("/admin/{app_label}/{model_name}/{object}/history/"),
    "object": GET("/admin/{app_label}/{model_name}/{object}/"),
    "password_change": GET("/admin/{app_label}/{model_name}/{object}/password/"),
}

# Client messages on /ws (consumers.CLIENT_MESSAGES, and anything else). Neither anonymous nor an API
# key opens a socket: the session cookie is the only way in.
REFUSED = ("refused",) * (1 + len(KEY_ROLES))
SOCKET_MESSAGES = {
    # message                   request                                        anonymous + keys  scoped          staff       superuser
    "ping":                    ({"type": "ping"},                              *REFUSED, "pong", "pong", "pong"),
    "resume":                  ({"type": "resume", "after": 0},                *REFUSED, "A", "A+B", "A+B"),
    "watch":                   ({"type": "watch", "threat": "{threat}"},       *REFUSED, ("watching", "error"), "watching", "watching"),
    "anything else":           ({"type": "subscribe", "group": "threats"},     *REFUSED, "ignored", "ignored", "ignored"),
}


def row_for(endpoint, name):
    """(request, cells) of an endpoint, or None when the table lacks it."""
    if endpoint in MATRIX:
        request, *cells = MATRIX[endpoint]
        return request, cells
    found = _admin_view(endpoint, name)
    if found is None or found[1] not in ADMIN_MODELS.get(found[0], {}):
        return None
    return ADMIN_REQUESTS[found[1]], list(ADMIN_MODELS[found[0]][found[1]])


ENDPOINTS = discovered_endpoints()


# --- The checks -----------------------------------------------------------------------------------------------


def test_the_table_lists_every_admin_model_and_nothing_else():
    assert set(ADMIN_MODELS) == admin_models()


def test_the_table_has_no_row_for_an_endpoint_that_is_gone():
    assert set(MATRIX) <= set(ENDPOINTS)
    kinds = {_admin_view(route, name) for route, name in ENDPOINTS.items()} - {None}
    assert {(label, kind) for label, views in ADMIN_MODELS.items() for kind in views} == kinds


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS), ids=lambda e: e or "/")
def test_every_endpoint_answers_every_role_as_the_table_says(world, endpoint):
    row = row_for(endpoint, ENDPOINTS[endpoint])
    assert row is not None, f"{endpoint!r} has no row in the tenant matrix (tests/test_tenant_matrix.py): add one"
    request, cells = row
    assert len(cells) == len(ROLES), f"{endpoint!r}: one cell per role {ROLES}"
    found = _admin_view(endpoint, ENDPOINTS[endpoint])
    problems = []
    for role, cell in zip(ROLES, cells):
        for side, expected in zip(("own", "other"), cell if isinstance(cell, tuple) else (cell, cell)):
            problems += _check(world, role, side, request, expected, found)
    assert not problems, "\n".join(problems)


def _check(world, role, side, request, expected, found=None):
    values = _placeholders(world, side, found and found[0])
    if found:
        values.update(app_label=found[0].split(".")[0], model_name=found[0].split(".")[1])
    client, headers = _client(world, role)
    with transaction.atomic():  # every write is undone: the next case starts from the same world
        response, sent = _send(client, headers, request, values)
        got = _answer(response, found and found[1])
        if found and found[1] == "delete" and not _still_there(world, side, found[0]):
            got = "deleted"
        transaction.set_rollback(True)
    problems = [f"{role} on {side}: expected {expected!r}, got {got!r}"] if got != expected else []
    if role in SCOPED_ROLES and (leaked := _leaks(world, response, sent)):
        problems.append(f"{role} on {side}: customer B's data in the answer: {leaked}")
    return problems


# --- WebSocket client messages ------------------------------------------------------------------------------------

SOCKET_TIMEOUT = 3


def test_the_table_has_a_row_for_every_client_message():
    assert set(SOCKET_MESSAGES) == {*consumers.CLIENT_MESSAGES, "anything else"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", sorted({*consumers.CLIENT_MESSAGES, "anything else"}))
async def test_every_client_message_answers_every_role_as_the_table_says(kind):
    assert kind in SOCKET_MESSAGES, f"client message {kind!r} has no row in the tenant matrix: add one"
    message, *cells = SOCKET_MESSAGES[kind]
    world = await database_sync_to_async(_socket_world)()
    problems = []
    for role, cell in zip(ROLES, cells, strict=True):
        for side, expected in zip(("own", "other"), cell if isinstance(cell, tuple) else (cell, cell)):
            sent = json.dumps(_fill(message, await database_sync_to_async(_placeholders)(world, side)))
            got, frames = await _socket_answer(world, role, sent)
            if got != expected:
                problems.append(f"{role} on {side}: expected {expected!r}, got {got!r}")
            leaked = [m for m in _b_markers(world) if m in frames and m not in sent] if role in SCOPED_ROLES else []
            if leaked:
                problems.append(f"{role} on {side}: customer B's data on the socket: {leaked}")
    assert not problems, "\n".join(problems)


def _socket_world():
    from django.apps import apps

    importlib.import_module("threats.migrations.0005_user_access_and_roles").create_roles(apps, None)
    return _build_world(Client())


async def _socket_answer(world, role, text):
    """What the socket said to one client message: "refused", a reply type, "ignored", or for a
    resume the customers replayed ("A", "A+B"); and every frame it sent, as text."""
    headers = [(b"origin", b"http://testserver"), (b"host", b"testserver")]
    if role in world["sessions"]:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={world['sessions'][role]}".encode()))
    if role in world["keys"]:
        headers.append((b"x-api-key", world["keys"][role].encode()))
    socket = WebsocketCommunicator(application, "/ws", headers=headers)
    connected, _ = await socket.connect(timeout=SOCKET_TIMEOUT)
    if not connected:
        return "refused", ""
    frames = [await socket.receive_from(SOCKET_TIMEOUT)]  # hello
    await socket.send_to(text_data=text)
    answer = await _reply(socket, frames, json.loads(text).get("type"))
    await socket.disconnect()
    return answer, "\n".join(frames)


async def _reply(socket, frames, kind):
    if kind == "resume":
        replayed = set()
        while (message := json.loads(await _frame(socket, frames)))["type"] != "resumed":
            replayed.add({"acme": "A", "globex-secret": "B"}[message["threat"]["customer_slug"]])
        return "+".join(sorted(replayed))
    if await socket.receive_nothing(0.2):
        return "ignored"
    return json.loads(await _frame(socket, frames))["type"]


async def _frame(socket, frames):
    frames.append(await socket.receive_from(SOCKET_TIMEOUT))
    return frames[-1]
