"""Django admin for triage. Triage fields are read-only here: they change only through the actions
below, which go through `services` so that every change is an event (audit trail + live push)."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.urls import reverse
from django.utils.html import format_html

from agents.models import AgentRun

from . import access, apikeys, audit, services
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


class AgentRunInline(admin.TabularInline):
    model = AgentRun
    extra = 0
    can_delete = False
    fields = ("kind", "status", "confidence", "duration_ms", "summary", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class NoteInline(admin.TabularInline):
    model = Note
    extra = 0
    can_delete = False
    fields = ("author", "body", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class EventInline(admin.TabularInline):
    model = ThreatEvent
    extra = 0
    can_delete = False
    fields = ("seq", "type", "actor_label", "created_at")
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
        except (services.InvalidInput, services.AccessDenied, services.NotFound) as exc:
            refused.append(f"{threat.title}: {getattr(exc, 'detail', exc)}")
    if done:
        modeladmin.message_user(request, f"{describe} {done} threat(s).", messages.SUCCESS)
    for problem in refused:
        modeladmin.message_user(request, problem, messages.WARNING)


@admin.action(description="Acknowledge", permissions=["change"])
def acknowledge(modeladmin, request, queryset):
    skipped = queryset.exclude(status=Status.NEW).count()
    if skipped:
        modeladmin.message_user(request, f"Skipped {skipped} threat(s) that were no longer new.", messages.INFO)
    _apply(modeladmin, request, queryset.filter(status=Status.NEW), "Acknowledged", status=Status.ACKNOWLEDGED)


@admin.action(description="Assign to me", permissions=["change"])
def assign_to_me(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "Assigned to you", assignee=request.user.get_username())


@admin.action(description="Close as false positive", permissions=["change"])
def mark_false_positive(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "Closed as false positive", status=Status.CLOSED,
           disposition=Disposition.FALSE_POSITIVE, reason=f"Marked false positive in admin by {request.user}")


@admin.action(description="Resolve as true positive", permissions=["change"])
def resolve(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "Resolved", status=Status.RESOLVED,
           disposition=Disposition.TRUE_POSITIVE, reason=f"Resolved in admin by {request.user}")


@admin.register(Threat)
class ThreatAdmin(admin.ModelAdmin):
    list_display = ("title", "severity", "risk_score", "status", "assignee", "customer", "threat_type",
                    "analysis_status", "requires_human_review", "received_at")
    list_filter = ("severity", "status", "analysis_status", "requires_human_review", "threat_type", "source",
                   "customer", "assignee")
    search_fields = ("title", "source_ref", "executive_summary")
    list_select_related = ("customer", "assignee")
    date_hierarchy = "received_at"
    actions = [acknowledge, assign_to_me, mark_false_positive, resolve]
    inlines = [AgentRunInline, NoteInline, EventInline]
    show_full_result_count = False  # COUNT(*) of a large table on every page is slow

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Threat._meta.fields]

    def get_queryset(self, request):
        return access.scoped(super().get_queryset(request), request.user)  # customer scoping, as everywhere

    def has_add_permission(self, request):
        return False  # threats come from the generator, the API or imports


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "tier", "rate_limit_per_minute", "bot_sensitivity", "auto_block", "timezone")
    list_filter = ("tier", "bot_sensitivity", "auto_block")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(InfraEvent)
class InfraEventAdmin(admin.ModelAdmin):
    list_display = ("kind", "description", "customer", "service", "started_at", "ended_at")
    list_filter = ("kind", "customer")
    search_fields = ("description", "service")


@admin.register(ContextItem)
class ContextItemAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "customer", "valid_from", "valid_until")
    list_filter = ("kind", "customer")
    search_fields = ("title", "body")


@admin.register(ThreatEvent)
class ThreatEventAdmin(admin.ModelAdmin):
    """The audit trail: read-only."""

    list_display = ("seq", "type", "threat", "actor_label", "created_at")
    list_filter = ("type", "actor_kind")
    list_select_related = ("threat",)
    show_full_result_count = False

    def get_queryset(self, request):
        return access.scoped(super().get_queryset(request), request.user, "threat__customer_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Alert ingestion: API keys and alert groups (README "Alert ingestion") ---------------------


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
class APIKeyAdmin(admin.ModelAdmin):
    """Keys are issued here; the secret is shown once, in a message after saving, and only its
    SHA-256 is stored. Revoke with the action; a revoked key cannot be re-activated."""

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
class ThreatGroupAdmin(admin.ModelAdmin):
    """Read-only: groups are built by ingestion. The head is the member the agents analysed."""

    list_display = ("title", "customer", "source", "member_count", "worst_severity_hint", "first_seen", "last_seen",
                    "head_link", "members_link")
    list_filter = ("source", "worst_severity_hint", "customer")
    search_fields = ("title", "key")
    list_select_related = ("customer", "head")
    date_hierarchy = "last_seen"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in ThreatGroup._meta.fields]

    def get_queryset(self, request):
        return access.scoped(super().get_queryset(request), request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Head")
    def head_link(self, obj):
        if not obj.head_id:
            return "—"
        url = reverse("admin:threats_threat_change", args=[obj.head_id])
        return format_html('<a href="{}">{}</a> ({})', url, obj.head.title[:60],
                           obj.head.severity or obj.head.analysis_status)

    @admin.display(description="Members")
    def members_link(self, obj):
        url = reverse("admin:threats_threat_changelist")
        return format_html('<a href="{}?group__id__exact={}">{} alert(s)</a>', url, obj.pk, obj.member_count)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    """Read-only: campaigns are built by ingestion (one user's activity across hosts and rules)."""

    list_display = ("title", "customer", "key", "threat_count", "first_seen", "last_seen", "threats_link")
    list_filter = ("customer",)
    search_fields = ("title", "key")
    list_select_related = ("customer",)
    date_hierarchy = "last_seen"
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Campaign._meta.fields]

    def get_queryset(self, request):
        return access.scoped(super().get_queryset(request), request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Threats")
    def threats_link(self, obj):
        url = reverse("admin:threats_threat_changelist")
        return format_html('<a href="{}?campaign__id__exact={}">{} threat(s)</a>', url, obj.pk, obj.threat_count)


# --- Users: roles are the groups viewer / analyst / admin; customer scoping (README "Security") ----


class UserAccessInline(admin.StackedInline):
    """Present = the user sees only the customers listed (none if the list is empty)."""

    model = UserAccess
    can_delete = True
    extra = 0
    max_num = 1
    filter_horizontal = ("customers",)
    verbose_name = "customer scope (only these customers)"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class ScopedUserAdmin(UserAdmin):
    inlines = (*UserAdmin.inlines, UserAccessInline)
