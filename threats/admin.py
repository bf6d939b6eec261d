"""Django admin for triage. Triage changes go through `services` (so that every change is an event:
audit trail + live push): the list's actions, and the threat change page's triage fields, saved
only from the version the page was opened at (optimistic concurrency, docs/api.md).

Alert-derived text (columns, read-only fields, list filters) is shown through `hidden_text`, so a
character that hides or reorders text appears as a styled marker (docs/security.md); JSON fields
(risk factors, ATT&CK, response plan, timeline, the alert itself) as tables (`json_html`).

Every registered model is customer-scoped (docs/security.md "Multi-tenancy"): a user with a customer
scope lists, filters, opens and writes only its customers' rows; rows without a customer (shared by
every customer) are read-only to it; users, groups and customers are the unscoped staff's."""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import display_for_field
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.defaultfilters import linebreaksbr
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from . import access, apikeys, audit, hidden_text, services
from .choices import Disposition, Status
from .importers import FORMATS
from .models import (
    APIKey,
    Campaign,
    ContextItem,
    Customer,
    InfraEvent,
    Note,
    Threat,
    ThreatEvent,
    ThreatGroup,
    UserAccess,
)


# --- Showing alert text: hidden characters as markers ------------------------------------------


def revealed(model, name):
    """An admin column or read-only field showing the model field `name` as Django would (choices,
    JSON, dates), with hidden characters as markers."""
    field = model._meta.get_field(name)

    @admin.display(description=field.verbose_name, ordering=name)
    def show(obj):
        if isinstance(field, models.JSONField):
            return json_html(getattr(obj, name))
        return linebreaksbr(hidden_text.reveal_html(display_for_field(getattr(obj, name), field, "-")))

    show.__name__ = name  # the row's CSS class and the help text lookup use it
    return show


def _is_text(field):
    return isinstance(field, (models.CharField, models.TextField, models.JSONField)) and not field.choices


def read_only(model, names=None):
    """Fields for a read-only form, in order: text and JSON through `revealed`, the others by name."""
    fields = [model._meta.get_field(n) for n in names] if names else model._meta.fields
    return tuple(revealed(model, f.name) if _is_text(f) else f.name for f in fields)


# --- Showing JSON as tables: the verdict's risk factors, ATT&CK, response plan, timeline ------


JSON_MAX_DEPTH = 6  # deeper than this (no verdict is): the rest as escaped JSON text
JSON_MAX_ROWS = 200  # of one list: an alert's own JSON may hold thousands


def json_html(value, depth=0):
    """A JSON value as HTML an analyst reads: an object as a two-column table, a list of objects as
    a table with a column per key, a list of values as a comma-separated line. Every key and value
    is alert-derived and untrusted: each is escaped (hidden characters as markers), none is markup."""
    if value in (None, "", [], {}):
        return "—"
    if depth >= JSON_MAX_DEPTH:
        return hidden_text.reveal_html(json.dumps(value, ensure_ascii=False, default=str))
    if isinstance(value, dict):
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                                ((hidden_text.reveal_html(str(k)), json_html(v, depth + 1)) for k, v in value.items()))
        return format_html('<table class="json-table">{}</table>', rows)
    if isinstance(value, list):
        return _json_list(value, depth)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return hidden_text.reveal_html(str(value))


def _json_list(items, depth):
    shown, more = items[:JSON_MAX_ROWS], len(items) - JSON_MAX_ROWS
    tail = format_html('<p class="json-more">… and {} more</p>', more) if more > 0 else ""
    if not all(isinstance(item, dict) for item in shown):
        line = mark_safe(", ".join(json_html(item, depth + 1) for item in shown))  # noqa: S308 - each part escaped
        return format_html('<span class="json-list">{}</span>{}', line, tail)
    columns = list(dict.fromkeys(key for item in shown for key in item))
    head = format_html_join("", "<th>{}</th>", ((hidden_text.reveal_html(str(key)),) for key in columns))
    body = format_html_join("", "<tr>{}</tr>", ((format_html_join(
        "", "<td>{}</td>", ((json_html(item.get(key), depth + 1),) for key in columns)),) for item in shown))
    return format_html('<table class="json-table json-rows"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}',
                       head, body, tail)


class RevealedValuesFilter(admin.AllValuesFieldListFilter):
    """Filter choices taken from the data, hidden characters as markers. (Related objects' choices
    are their __str__, which shows markers itself.)"""

    def choices(self, changelist):
        for choice in super().choices(changelist):
            yield {**choice, "display": hidden_text.reveal_html(choice["display"])}


class HiddenTextMedia:
    """The marker style (the admin does not load the site's stylesheet)."""

    class Media:
        css = {"all": ["css/admin.css"]}


# --- Customer scoping, shared by every admin below -----------------------------------------------------


class ScopedCustomerFilter(admin.RelatedFieldListFilter):
    """"By customer" offering only the customers the user may see."""

    def field_choices(self, field, request, model_admin):
        return [(c.pk, str(c)) for c in access.visible_customers(request.user)]


class ScopedUserFilter(admin.RelatedFieldListFilter):
    """"By assignee" offering only the users the user may see named."""

    def field_choices(self, field, request, model_admin):
        return [(u.pk, str(u)) for u in access.visible_users(request.user).order_by("username")]


SCOPED_FILTERS = {"customer": ScopedCustomerFilter, "assignee": ScopedUserFilter}


class TenantAdmin(admin.ModelAdmin):
    """A model admin scoped to the user's customers through `customer_path` (a lookup ending in the
    customer's id). With `shares_rows`, rows without a customer (shared by every customer) are
    listed too, read-only unless the user is unscoped (access.can_write_for_customer)."""

    customer_path = "customer_id"
    shares_rows = False

    def get_queryset(self, request):
        found = super().get_queryset(request)
        scope = access.customer_scope(request.user)
        if scope is access.ALL_CUSTOMERS:
            return found
        visible = Q(**{f"{self.customer_path}__in": scope})
        if self.shares_rows:
            visible |= Q(**{f"{self.customer_path}__isnull": True})
        return found.filter(visible)

    def get_list_filter(self, request):
        return [(name, SCOPED_FILTERS[name]) if name in SCOPED_FILTERS else name
                for name in super().get_list_filter(request)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Customer:
            kwargs["queryset"] = access.visible_customers(request.user)
            if access.is_scoped(request.user):
                kwargs["required"] = True  # empty = shared by every customer: unscoped staff only
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._writable(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._writable(request, obj)

    def save_model(self, request, obj, form, change):
        if not self._writable(request, obj):  # the form's choices already refuse it; never rely on that alone
            raise PermissionDenied
        super().save_model(request, obj, form, change)

    def _writable(self, request, obj):
        return obj is None or access.can_write_for_customer(request.user, self._customer_id(obj))

    def _customer_id(self, obj):
        for name in self.customer_path.split("__"):
            obj = getattr(obj, name) if obj is not None else None
        return obj


class UnscopedOnlyAdmin:
    """Mixed into admins of what spans customers (users, groups, customers' creation): a scoped
    user may neither see nor change them, or it could widen its own scope."""

    def has_view_permission(self, request, obj=None):
        return not access.is_scoped(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return not access.is_scoped(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return not access.is_scoped(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not access.is_scoped(request.user) and super().has_delete_permission(request, obj)


class NoteInline(admin.TabularInline):
    model = Note
    extra = 0
    can_delete = False
    fields = read_only(Note, ["author", "body", "created_at"])
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class EventInline(admin.TabularInline):
    model = ThreatEvent
    extra = 0
    can_delete = False
    fields = read_only(ThreatEvent, ["seq", "type", "actor_label", "created_at"])
    readonly_fields = fields
    ordering = ("seq",)

    def has_add_permission(self, request, obj=None):
        return False


def _apply(modeladmin, request, queryset, describe, **fields):
    done, refused = 0, []
    for threat in queryset:
        try:
            services.triage(request.user, threat.pk, **fields)
            done += 1
        except (services.InvalidInput, access.AccessDenied, access.NotFound) as exc:
            refused.append(hidden_text.reveal_text(f"{threat.title}: {getattr(exc, 'detail', exc)}"))
    if done:
        modeladmin.message_user(request, f"{describe} {done} threat(s).", messages.SUCCESS)
    for problem in refused:
        modeladmin.message_user(request, problem, messages.WARNING)


@admin.action(description="Acknowledge (takes the unassigned ones)", permissions=["change"])
def acknowledge(modeladmin, request, queryset):
    skipped = queryset.exclude(status=Status.NEW).count()
    if skipped:
        modeladmin.message_user(request, f"Skipped {skipped} threat(s) that were no longer new.", messages.INFO)
    _apply(modeladmin, request, queryset.filter(status=Status.NEW), "Acknowledged", status=Status.ACKNOWLEDGED)


@admin.action(description="Assign to me", permissions=["change"])
def assign_to_me(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "Assigned to you", assignee=request.user.get_username())


class ReasonForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=services.REASON_MAX_LENGTH,
                             widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
                             help_text="Why this verdict: it is kept with the threat and shown in its history.")


def _close_with_reason(modeladmin, request, queryset, action, describe, **fields):
    """A closing action asks for the reason first, as the dashboard does (an intermediate page that
    posts the same action back with `apply`); an empty reason is asked for again."""
    form = ReasonForm(request.POST if "apply" in request.POST else None)
    if form.is_bound and form.is_valid():
        _apply(modeladmin, request, queryset, describe, reason=form.cleaned_data["reason"], **fields)
        return None
    context = {**modeladmin.admin_site.each_context(request), "title": f"{describe}: why?", "form": form,
               "queryset": queryset, "action": action, "opts": modeladmin.model._meta,
               "action_checkbox_name": ACTION_CHECKBOX_NAME, "describe": describe}
    return TemplateResponse(request, "admin/threats/threat/close_reason.html", context)


@admin.action(description="Close as false positive…", permissions=["change"])
def mark_false_positive(modeladmin, request, queryset):
    return _close_with_reason(modeladmin, request, queryset, "mark_false_positive", "Closed as false positive",
                              status=Status.CLOSED, disposition=Disposition.FALSE_POSITIVE)


@admin.action(description="Resolve as true positive…", permissions=["change"])
def resolve(modeladmin, request, queryset):
    return _close_with_reason(modeladmin, request, queryset, "resolve", "Resolved as true positive",
                              status=Status.RESOLVED, disposition=Disposition.TRUE_POSITIVE)


class TriageForm(forms.ModelForm):
    """The threat change page's triage fields. They are not model fields: the change goes through
    services.triage like every other, and only from the version the page was opened at."""

    triage_status = forms.ChoiceField(label="Status", choices=Status.choices)
    triage_disposition = forms.ChoiceField(label="Disposition", required=False,
                                           choices=[("", "—"), *Disposition.choices])
    triage_reason = forms.CharField(label="Reason", required=False, max_length=services.REASON_MAX_LENGTH,
                                    widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                                    help_text="Closing (resolved or closed) needs a disposition and a reason.")
    triage_assignee = forms.ChoiceField(label="Assignee", required=False)
    triage_version = forms.IntegerField(widget=forms.HiddenInput)

    # form field -> (service argument, the threat's current value)
    SERVICE_ARGUMENTS = {
        "triage_status": ("status", lambda t: t.status),
        "triage_disposition": ("disposition", lambda t: t.disposition),
        # Shown (and compared) with hidden characters as markers, as every text on these pages.
        "triage_reason": ("reason", lambda t: hidden_text.reveal_text(t.disposition_reason)),
        "triage_assignee": ("assignee", lambda t: t.assignee.get_username() if t.assignee_id else ""),
    }
    user = None  # set per request by ThreatAdmin.get_form

    class Meta:
        model = Threat
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = access.analysts(self.user)
        self.fields["triage_assignee"].choices = [("", "unassigned"), *((n, hidden_text.reveal_text(n)) for n in names)]
        self.initial.update(self._current(self.instance))
        self.changes = {}

    def _current(self, threat):
        values = {name: current(threat) for name, (_argument, current) in self.SERVICE_ARGUMENTS.items()}
        return {**values, "triage_version": threat.version}

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        # Locked until the admin's transaction commits (it wraps the whole save): nobody can change
        # the threat between this check and the save. SQLite's IMMEDIATE transactions do the same.
        locked = Threat.objects.select_for_update(of=("self",)).select_related("assignee").get(pk=self.instance.pk)
        if locked.version != data["triage_version"]:
            self._show_current(locked)
            raise ValidationError(self._conflict_message(locked, data["triage_version"]), code="stale")
        current = self._current(locked)
        self.changes = {argument: data[name] or None if argument in ("disposition", "assignee") else data[name]
                        for name, (argument, _current) in self.SERVICE_ARGUMENTS.items()
                        if (data[name] or "") != (current[name] or "")}
        if self.changes:
            try:
                services.check_triage(self.user, locked, **self.changes)
            except services.InvalidInput as exc:
                raise ValidationError(exc.detail, code="invalid") from None
        return data

    def _show_current(self, threat):
        # The bound form shows the current values (and version): what the other analyst did.
        self.data = self.data.copy()
        for name, value in self._current(threat).items():
            self.data[name] = str(value)

    @staticmethod
    def _conflict_message(threat, version):
        from .views import describe_event

        changes = [f"{event.actor_label or event.actor_kind} changed it "
                   f"({describe_event({'type': event.type, 'changes': event.payload.get('changes', {})})})"
                   for event in services.triage_changes_since(threat, version)]
        who = "; then ".join(changes) if changes else "Another analyst changed it"
        return (f"Not saved: {hidden_text.reveal_text(who)} after you opened this page. The form now shows "
                "the current values; make your change again if it still applies.")


@admin.register(Threat)
class ThreatAdmin(HiddenTextMedia, TenantAdmin):
    # Seven narrow columns: at 1440 px they fit between the navigation and the filter sidebar
    # (tests/browser/test_admin_layout.py). Severity, risk, analysis state and the review flag are one
    # "Verdict"; each keeps its own filter.
    list_display = (revealed(Threat, "title"), "verdict", "status", "assignee", "customer", "type_column",
                    "received_column")
    list_filter = ("severity", "status", "analysis_status", "requires_human_review",
                   ("threat_type", RevealedValuesFilter), ("source", RevealedValuesFilter), "customer", "assignee")
    search_fields = ("title", "source_ref", "executive_summary")
    list_select_related = ("customer", "assignee")
    date_hierarchy = "received_at"
    actions = [acknowledge, assign_to_me, mark_false_positive, resolve]
    inlines = [NoteInline, EventInline]  # the agents' runs come first (agents/admin.py adds them)
    show_full_result_count = False  # COUNT(*) of a large table on every page is slow

    fields = readonly_fields = read_only(Threat)
    form = TriageForm
    triage_fields = ("triage_status", "triage_disposition", "triage_reason", "triage_assignee", "triage_version")

    def has_add_permission(self, request):
        return False  # threats come from the generator, the API or imports

    @admin.display(description="Verdict", ordering="risk_score")
    def verdict(self, obj):
        shown = f"{obj.get_severity_display()} {obj.risk_score}" if obj.severity else obj.get_analysis_status_display()
        if obj.requires_human_review:
            return format_html('{}<br><span class="needs-review">needs review</span>', shown)
        return shown

    @admin.display(description="Type", ordering="threat_type")
    def type_column(self, obj):
        # A line may break after an underscore (device_<wbr>compromise): the column stays narrow.
        return mark_safe(str(hidden_text.reveal_html(obj.threat_type)).replace("_", "_<wbr>"))  # noqa: S308 - escaped; no "_" in markup

    @admin.display(description="Received", ordering="received_at")
    def received_column(self, obj):
        at = timezone.localtime(obj.received_at)
        return format_html('<time datetime="{}">{}<br>{}</time>', at.isoformat(), at.strftime("%Y-%m-%d"),
                           at.strftime("%H:%M"))

    # The change page's sections after the threat's own fields (every field not named here), in
    # the order an analyst reads a verdict; the alert as received last, folded.
    sections = (
        ("Verdict", {"fields": ("severity", "risk_score", "confidence", "requires_human_review", "review_reasons",
                                "executive_summary", "risk_factors")}),
        ("ATT&CK", {"fields": ("mitre",)}),
        ("Response plan", {"fields": ("response_plan",)}),
        ("False positive and adversarial input", {"fields": ("false_positive", "adversarial")}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Alert as received", {"fields": ("observables", "mitre_hints", "signal", "raw"), "classes": ("collapse",)}),
    )

    def get_fieldsets(self, request, obj=None):
        """Who may triage gets the triage fields first (the model's own triage columns, shown
        read-only otherwise, are left out of the rest)."""
        triage = obj is not None and self.has_change_permission(request, obj)
        left_out = {"status", "disposition", "disposition_reason", "assignee", "version"} if triage else set()
        by_name = {getattr(f, "__name__", f): f for f in self.fields}
        in_sections = {name for _title, options in self.sections for name in options["fields"]}
        threat = [f for name, f in by_name.items() if name not in in_sections | left_out]
        sections = [(title, {**options, "fields": [by_name[name] for name in options["fields"]]})
                    for title, options in self.sections]
        return [*([("Triage", {"fields": self.triage_fields})] if triage else []), ("Threat", {"fields": threat}),
                *sections]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user  # a class made for this request: the assignee choices are the user's
        return form

    def save_model(self, request, obj, form, change):
        """The form checked the change under the row lock; apply it through the service."""
        obj.triage_saved = bool(getattr(form, "changes", None))  # read by response_change below
        if obj.triage_saved:
            version = form.cleaned_data["triage_version"]
            services.triage(request.user, obj.pk, version=version, **form.changes)

    def log_change(self, request, obj, message):
        if getattr(obj, "triage_saved", True):  # no "No fields changed." entries in the history
            super().log_change(request, obj, message)

    def response_change(self, request, obj):
        """Say "changed successfully" only when something was: a save with every triage field as it
        was changes nothing, and says so."""
        if getattr(obj, "triage_saved", True):
            return super().response_change(request, obj)
        self.message_user(request, format_html("Nothing changed: the triage fields of “{}” are as they were, so "
                                               "nothing was saved.", hidden_text.reveal_html(obj.title)),
                          messages.INFO)
        if "_continue" in request.POST:
            context = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
            return HttpResponseRedirect(add_preserved_filters(context, request.path))
        return self.response_post_save_change(request, obj)


@admin.register(Customer)
class CustomerAdmin(TenantAdmin):
    """A scoped user sees (and with the permission configures) its own customers; creating and
    deleting tenants is the unscoped staff's."""

    customer_path = "pk"
    list_display = ("name", "slug", "tier", "rate_limit_per_minute", "bot_sensitivity", "auto_block", "timezone")
    list_filter = ("tier", "bot_sensitivity", "auto_block")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}

    def has_add_permission(self, request):
        return not access.is_scoped(request.user) and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return not access.is_scoped(request.user) and super().has_delete_permission(request, obj)


@admin.register(InfraEvent)
class InfraEventAdmin(HiddenTextMedia, TenantAdmin):
    shares_rows = True  # shared infrastructure (a CDN outage) explains every customer's signals
    list_display = ("kind", revealed(InfraEvent, "description"), "customer", revealed(InfraEvent, "service"),
                    "started_at", "ended_at")
    list_filter = ("kind", "customer")
    search_fields = ("description", "service")


@admin.register(ContextItem)
class ContextItemAdmin(HiddenTextMedia, TenantAdmin):
    shares_rows = True  # an advisory for everyone
    list_display = (revealed(ContextItem, "title"), "kind", "customer", "valid_from", "valid_until")
    list_filter = ("kind", "customer")
    search_fields = ("title", "body")


@admin.register(ThreatEvent)
class ThreatEventAdmin(HiddenTextMedia, TenantAdmin):
    """The audit trail: read-only."""

    customer_path = "threat__customer_id"
    list_display = ("seq", "type", "threat", revealed(ThreatEvent, "actor_label"), "created_at")
    fields = readonly_fields = read_only(ThreatEvent)
    list_filter = ("type", "actor_kind")
    list_select_related = ("threat",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Alert ingestion: API keys and alert groups (docs/ingestion.md) ---------------------


class APIKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=APIKey.Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       initial=[APIKey.Scope.INGEST])
    source = forms.ChoiceField(choices=[("", "Any format"), *[(f, f) for f in FORMATS]], required=False,
                               help_text="An ingest key restricted to one format is refused for the others.")

    class Meta:
        model = APIKey
        fields = ("name", "scopes", "source", "customer")


@admin.action(description="Revoke selected keys", permissions=["change"])
def revoke_keys(modeladmin, request, queryset):
    count = apikeys.revoke(queryset)
    audit.record("key.revoked", request.user, keys=sorted(queryset.values_list("prefix", flat=True)))
    modeladmin.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(APIKey)
class APIKeyAdmin(TenantAdmin):
    """Keys are issued here; the secret is shown once, in a message after saving, and only its
    SHA-256 is stored. Revoke with the action; a revoked key cannot be re-activated. A key without
    a customer reads every customer, so a scoped user neither sees nor issues one."""

    form = APIKeyForm
    list_display = ("name", "prefix", "scope_list", "source", "customer", "active", "last_used_at", "revoked_at")
    list_filter = ("source", ("revoked_at", admin.EmptyFieldListFilter), "customer")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_by", "created_at", "last_used_at", "revoked_at")
    actions = [revoke_keys]

    @admin.display(description="Scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes or [])

    @admin.display(boolean=True)
    def active(self, obj):
        return obj.active

    def save_model(self, request, obj, form, change):
        raw = None
        if not change:
            obj.created_by = request.user
            raw = apikeys.assign_secret(obj)
        super().save_model(request, obj, form, change)
        if raw:
            audit.record("key.issued", request.user, key=obj.prefix, scopes=obj.scopes,
                         customer=obj.customer.slug if obj.customer_id else None)
            self.message_user(request, f"The new key for “{obj.name}” is {raw} — copy it now: only its hash is "
                                       "stored and it will not be shown again.", messages.WARNING)


@admin.register(ThreatGroup)
class ThreatGroupAdmin(HiddenTextMedia, TenantAdmin):
    """Read-only: groups are built by ingestion. The head is the member the agents analysed."""

    list_display = (revealed(ThreatGroup, "title"), "customer", revealed(ThreatGroup, "source"), "member_count",
                    "worst_severity_hint", "first_seen", "last_seen", "head_link", "members_link")
    list_filter = (("source", RevealedValuesFilter), ("worst_severity_hint", RevealedValuesFilter), "customer")
    search_fields = ("title", "key")
    list_select_related = ("customer", "head")
    date_hierarchy = "last_seen"
    show_full_result_count = False

    fields = readonly_fields = read_only(ThreatGroup)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Head")
    def head_link(self, obj):
        if not obj.head_id:
            return "—"
        url = reverse("admin:threats_threat_change", args=[obj.head_id])
        return format_html('<a href="{}">{}</a> ({})', url, hidden_text.reveal_html(obj.head.title[:60]),
                           obj.head.severity or obj.head.analysis_status)

    @admin.display(description="Members")
    def members_link(self, obj):
        url = reverse("admin:threats_threat_changelist")
        return format_html('<a href="{}?group__id__exact={}">{} alert(s)</a>', url, obj.pk, obj.member_count)


@admin.register(Campaign)
class CampaignAdmin(HiddenTextMedia, TenantAdmin):
    """Read-only: campaigns are built by ingestion (one user's activity across hosts and rules)."""

    list_display = (revealed(Campaign, "title"), "customer", revealed(Campaign, "key"), "threat_count", "first_seen",
                    "last_seen", "threats_link")
    list_filter = ("customer",)
    search_fields = ("title", "key")
    list_select_related = ("customer",)
    date_hierarchy = "last_seen"
    show_full_result_count = False
    fields = readonly_fields = read_only(Campaign)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Threats")
    def threats_link(self, obj):
        url = reverse("admin:threats_threat_changelist")
        return format_html('<a href="{}?campaign__id__exact={}">{} threat(s)</a>', url, obj.pk, obj.threat_count)


# --- Users: roles are the groups viewer / analyst / admin; customer scoping (docs/security.md) ----


class UserAccessInline(admin.StackedInline):
    """Present = the user sees only the customers listed (none if the list is empty)."""

    model = UserAccess
    can_delete = True
    extra = 0
    max_num = 1
    filter_horizontal = ("customers",)
    verbose_name = "customer scope (only these customers)"


User = get_user_model()
for model in (User, Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(User)
class ScopedUserAdmin(UnscopedOnlyAdmin, UserAdmin):
    """Users, roles and customer scopes: a scoped user changing any of them could widen its own scope."""

    inlines = (*UserAdmin.inlines, UserAccessInline)



@admin.register(Group)
class RoleAdmin(UnscopedOnlyAdmin, GroupAdmin):
    """The roles (viewer, analyst, admin) hold permissions for every customer alike."""
