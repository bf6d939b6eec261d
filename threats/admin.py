"""Django admin for triage. Triage fields are read-only here: they change only through the actions
below, which go through `services` so that every change is an event (audit trail + live push)."""

from django.contrib import admin, messages

from agents.models import AgentRun

from . import services
from .choices import Disposition, Status
from .models import ContextItem, Customer, InfraEvent, Note, Threat, ThreatEvent


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

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
