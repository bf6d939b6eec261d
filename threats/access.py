"""Who may see and do what (docs/security.md): roles, customer scoping, API key scopes, and the one
access check used by pages, the API, WebSockets and admin alike.

Roles are Django groups (created by migration 0005): `viewer` reads, `analyst` also triages, adds
notes and triggers, `admin` also manages keys, users and configuration. A *principal* is a user
(session) or an API key; a key's scopes map onto the same permissions (`read` = view, `trigger` =
add), never onto triage. Customer scoping: a user with a `UserAccess` row sees only the customers
listed there (none when the list is empty: scoping fails closed), a key bound to a customer sees
only that customer; everyone else sees every customer. Objects outside the scope answer "not
found", so their existence does not leak.

Sessions end on sockets too: logout, a password change, deactivation and a change of role or
scope send `force.close` to the user's own group (`user.<id>`), which every socket of that user on
every pod has joined (pitfall 4 of the reliability anchors).
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth import signals as auth_signals
from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from . import audit, grants, ratelimit
from .models import APIKey, Customer, Threat, ThreatEvent, UserAccess

VIEW_PERMISSION = "threats.view_threat"
TRIAGE_PERMISSION = "threats.change_threat"
TRIGGER_PERMISSION = "threats.add_threat"
# What each API key scope grants, as a permission; anything else (triage) is never a key's.
KEY_SCOPE_PERMISSIONS = {VIEW_PERMISSION: "read", TRIGGER_PERMISSION: "trigger"}
ALL_CUSTOMERS = None


class AccessDenied(Exception):
    """The principal is authenticated but may not do this."""


class NotFound(Exception):
    """No such object (or not visible to this principal)."""


# --- Principals and permissions ----------------------------------------------------------------


def principal(request):
    """The API key that authenticated the request, else the session user."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, APIKey) else request.user


def has_permission(who, permission):
    if isinstance(who, APIKey):
        return who.active and KEY_SCOPE_PERMISSIONS.get(permission) in (who.scopes or [])
    if not who.is_active:
        return False
    if who.is_superuser or not settings.ACCESS_CACHE_SECONDS:
        return who.has_perm(permission)
    return permission in _grants(who)[0]


def check_permission(who, permission):
    if not has_permission(who, permission):
        audit.record("access.denied", who, outcome="refused", permission=permission)
        if isinstance(who, APIKey):
            raise AccessDenied(f"This API key lacks the scope for '{permission}'.")
        raise AccessDenied(f"You do not have the '{permission}' permission.")


def customer_scope(who):
    """Ids of the customers `who` may see, or ALL_CUSTOMERS (None)."""
    if isinstance(who, APIKey):
        return [who.customer_id] if who.customer_id else ALL_CUSTOMERS
    if who.is_superuser or not who.is_authenticated:
        return ALL_CUSTOMERS
    if settings.ACCESS_CACHE_SECONDS:
        return _grants(who)[1]
    if not hasattr(who, "_soc_customer_scope"):
        who._soc_customer_scope = _read_scope(who)
    return who._soc_customer_scope


def _read_scope(user):
    access = UserAccess.objects.filter(user_id=user.pk).first()
    return ALL_CUSTOMERS if access is None else list(access.customers.values_list("pk", flat=True))


def _grants(user):
    """(permission names, customer scope) of an active non-superuser, from the access cache
    (threats/grants.py), read once per request."""
    if not hasattr(user, "_soc_grants"):
        user._soc_grants = grants.load(user, lambda u: (frozenset(u.get_all_permissions()), _read_scope(u)))
    return user._soc_grants


def scoped(queryset, who, field="customer_id"):
    scope = customer_scope(who)
    return queryset if scope is ALL_CUSTOMERS else queryset.filter(**{f"{field}__in": scope})


def can_see_customer(who, customer_id):
    scope = customer_scope(who)
    return scope is ALL_CUSTOMERS or customer_id in scope


def is_scoped(who):
    return customer_scope(who) is not ALL_CUSTOMERS


def can_write_for_customer(who, customer_id):
    """Whether `who` may create or change a record of this customer. A record without a customer
    applies to every customer (shared infrastructure, advisories), so only an unscoped principal
    may write one: a tenant must not influence another tenant's analysis."""
    scope = customer_scope(who)
    return scope is ALL_CUSTOMERS or (customer_id is not None and customer_id in scope)


# --- The access helpers: one per kind of object ---------------------------------------------------


def visible_threats(who):
    check_permission(who, VIEW_PERMISSION)
    return scoped(Threat.objects.select_related("customer", "assignee"), who)


def get_threat_for_user(who, threat_id):
    """The one access check for a single threat, shared by pages, API, admin actions and sockets."""
    from django.core.exceptions import ValidationError

    try:
        return visible_threats(who).get(pk=threat_id)
    except (Threat.DoesNotExist, ValueError, ValidationError):
        raise NotFound("Threat not found.") from None


def visible_events(who):
    """The event log as `who` may read it (replay, /api/events, the activity stream)."""
    check_permission(who, VIEW_PERMISSION)
    return scoped(ThreatEvent.objects.all(), who, "threat__customer_id")


def visible_customers(who):
    return scoped(Customer.objects.all(), who, "pk")


def find_customer(name):
    """The customer with this slug, else with exactly this name. Slug first, and never a
    case-insensitive name: "acme" could otherwise be one customer's slug and another's name."""
    return Customer.objects.filter(slug=name).first() or Customer.objects.filter(name=name).first()
def visible_users(who):
    """The users whose names `who` may see (assignee choices and filters): everyone for an unscoped
    user; for a scoped one itself and the users scoped to one of its customers, so a tenant's
    analyst never learns who else the installation serves."""
    users = get_user_model().objects.all()
    scope = customer_scope(who)
    if scope is ALL_CUSTOMERS:
        return users
    mine = Q(pk=who.pk) if isinstance(who, get_user_model()) else Q(pk__in=[])
    return users.filter(mine | Q(soc_access__customers__in=scope)).distinct()


def analysts(who, limit=500):
    """Who a threat can be assigned to: active users holding the view permission, among the users
    `who` may see named (a scoped analyst: itself and its customers' analysts). Usernames, sorted."""
    from django.contrib.auth.models import Permission

    permission = Permission.objects.filter(content_type__app_label="threats", codename="view_threat").first()
    holders = Q(is_superuser=True) | Q(user_permissions=permission) | Q(groups__permissions=permission)
    users = visible_users(who).filter(holders, is_active=True).distinct().order_by("username")
    return list(users.values_list("username", flat=True)[:limit])


def trigger_customer(who, requested):
    """The slug of the customer a trigger by `who` may use: the requested one, resolved as the
    trigger resolves it and refused outside the scope, or, for a scoped principal that names none,
    its first customer. None = any (the generator picks)."""
    scope = customer_scope(who)
    if scope is ALL_CUSTOMERS:
        return requested
    if not requested:
        first = Customer.objects.filter(pk__in=scope).order_by("name").first()
        if first is None:
            raise AccessDenied("You are not assigned to any customer.")
        return first.slug
    found = find_customer(requested)
    if found is None or found.pk not in scope:
        audit.record("access.denied", who, outcome="refused", permission=TRIGGER_PERMISSION, customer=requested)
        raise AccessDenied(f"You may not create threats for customer {requested!r}.")
    return found.slug


# --- Login throttling: per username and per client address, across pods --------------------------


class ThrottledModelBackend(ModelBackend):
    """ModelBackend behind a failed-login limit (settings.RATE_LIMITS `login_user`, `login_ip`).

    Over the limit a login is refused without checking the password. Because concurrent attempts
    all pass that first look, each failure is counted atomically after the check and the request
    is marked throttled when its count is over the limit; a correct password is refused too when
    the failures already reached the limit, so 50 parallel guesses reveal at most `limit` answers.
    The middleware turns a throttled login into 429 with Retry-After."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:  # createsuperuser, tests calling authenticate() directly
            return super().authenticate(request, username, password, **kwargs)
        name, ip = (username or "").strip().lower()[:150], ratelimit.request_ip(request)
        for verdict in (ratelimit.peek("login_user", name), ratelimit.peek("login_ip", ip)):
            if not verdict.allowed:
                return self._throttled(request, name, verdict)
        user = super().authenticate(request, username, password, **kwargs)
        if user is None:
            ratelimit.hit("login_user_from_ip", (name, ip))  # what a later success may forgive
            for verdict in (ratelimit.hit("login_user", name), ratelimit.hit("login_ip", ip)):
                if not verdict.allowed:
                    return self._throttled(request, name, verdict)
            return None
        for verdict in (ratelimit.peek("login_user", name), ratelimit.peek("login_ip", ip)):
            if not verdict.allowed:
                return self._throttled(request, name, verdict)
        # A typo or two must not add up over the day, so a success forgives the username's
        # failures made from the same address; failures from other addresses (a guessing burst
        # running while the real user logs in) keep counting.
        own = ratelimit.peek("login_user_from_ip", (name, ip))
        ratelimit.forgive("login_user", name, own.count)
        ratelimit.forgive("login_user_from_ip", (name, ip), own.count)
        return user

    def _throttled(self, request, name, verdict):
        request.login_throttled = verdict.retry_after
        audit.record("login.throttled", name or None, outcome="refused", retry_after=verdict.retry_after)


# --- Audit lines for logins, and ending a user's sockets when the session ends ---------------------


def user_group(user_id):
    return f"user.{user_id}"


def close_user_sockets(user_id, reason):
    """Tell every socket of this user, on every pod, to close (after the transaction commits)."""
    from . import events

    message = {"type": "force.close", "reason": reason}
    transaction.on_commit(lambda: events.send_to_group(user_group(user_id), message), robust=True)


def _on_login(sender, request, user, **kwargs):
    audit.record("login.ok", user, ip=ratelimit.request_ip(request) if request else "")


def _on_login_failed(sender, credentials, request=None, **kwargs):
    name = credentials.get("username", "")
    if request is None or not getattr(request, "login_throttled", None):  # else written as login.throttled
        audit.record("login.failed", name or None, outcome="refused",
                     ip=ratelimit.request_ip(request) if request else "")


def _on_logout(sender, request, user, **kwargs):
    if user is not None:
        audit.record("logout", user, ip=ratelimit.request_ip(request) if request else "")
        close_user_sockets(user.pk, "logout")


WATCHED_USER_FIELDS = {"password", "is_active", "is_superuser"}


def _remember_credentials(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or not instance.pk or (update_fields is not None and not WATCHED_USER_FIELDS & set(update_fields)):
        instance._soc_before = None
        return
    before = sender.objects.filter(pk=instance.pk).values("password", "is_active", "is_superuser").first()
    instance._soc_before = before


def _on_user_saved(sender, instance, created=False, raw=False, **kwargs):
    before = getattr(instance, "_soc_before", None)
    instance._soc_before = None
    if raw or created or before is None:
        return
    if before["password"] != instance.password:
        close_user_sockets(instance.pk, "password changed")
    elif before["is_active"] and not instance.is_active:
        close_user_sockets(instance.pk, "deactivated")
    elif before["is_superuser"] != instance.is_superuser:
        close_user_sockets(instance.pk, "role changed")


def _changed(action, pk_set):
    """An m2m signal that really changed something (adding a group a user already has does not)."""
    return action == "post_clear" or (action in ("post_add", "post_remove") and bool(pk_set))


def _on_groups_changed(sender, instance, action, pk_set=None, **kwargs):
    if _changed(action, pk_set) and isinstance(instance, get_user_model()):
        close_user_sockets(instance.pk, "role changed")


def _on_scope_changed(sender, instance, action, pk_set=None, **kwargs):
    if _changed(action, pk_set) and isinstance(instance, UserAccess):
        close_user_sockets(instance.user_id, "scope changed")


def _on_access_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        close_user_sockets(instance.user_id, "scope changed")


def _forget_user(sender, instance, raw=False, **kwargs):
    """A user's or a UserAccess row's save or deletion retires that user's cached grants."""
    if not raw:
        grants.forget(instance.user_id if isinstance(instance, UserAccess) else instance.pk)


def _forget_everyone(sender, raw=False, **kwargs):
    if not raw:
        grants.forget()


def _forget_related(sender, instance, action, pk_set=None, **kwargs):
    """A membership changed from either side: a user's groups, permissions or customers, or a
    group's permissions (then everyone in it, so everyone: groups are few and rarely edited)."""
    if not _changed(action, pk_set):
        return
    if isinstance(instance, get_user_model()):
        grants.forget(instance.pk)
    elif isinstance(instance, UserAccess):
        grants.forget(instance.user_id)
    else:
        grants.forget()


def _on_admin_change(sender, instance, created=False, raw=False, **kwargs):
    if created and not raw:
        action = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, str(instance.action_flag))
        audit.record("admin.change", instance.user, change=action, model=str(instance.content_type),
                     object=instance.object_repr, detail=instance.get_change_message())


def connect_signals():
    from django.contrib.admin.models import LogEntry

    user_model = get_user_model()
    post_save.connect(_on_admin_change, sender=LogEntry, dispatch_uid="soc-audit-admin")
    auth_signals.user_logged_in.connect(_on_login, dispatch_uid="soc-audit-login")
    auth_signals.user_login_failed.connect(_on_login_failed, dispatch_uid="soc-audit-login-failed")
    auth_signals.user_logged_out.connect(_on_logout, dispatch_uid="soc-audit-logout")
    pre_save.connect(_remember_credentials, sender=user_model, dispatch_uid="soc-user-before")
    post_save.connect(_on_user_saved, sender=user_model, dispatch_uid="soc-user-saved")
    m2m_changed.connect(_on_groups_changed, sender=user_model.groups.through, dispatch_uid="soc-user-groups")
    m2m_changed.connect(_on_scope_changed, sender=UserAccess.customers.through, dispatch_uid="soc-user-scope")
    post_save.connect(_on_access_saved, sender=UserAccess, dispatch_uid="soc-access-saved")
    _connect_grant_signals(user_model)


def _connect_grant_signals(user_model):
    """Everything that decides a user's permissions or customers retires the cached grants."""
    from django.contrib.auth.models import Group, Permission

    for model in (user_model, UserAccess):
        post_save.connect(_forget_user, sender=model, dispatch_uid=f"soc-grants-save-{model.__name__}")
        post_delete.connect(_forget_user, sender=model, dispatch_uid=f"soc-grants-delete-{model.__name__}")
    for model in (Group, Permission, Customer):
        post_delete.connect(_forget_everyone, sender=model, dispatch_uid=f"soc-grants-delete-{model.__name__}")
    for through in (user_model.groups.through, user_model.user_permissions.through,
                    Group.permissions.through, UserAccess.customers.through):
        m2m_changed.connect(_forget_related, sender=through, dispatch_uid=f"soc-grants-{through.__name__}")
