"""The agents' runs in the admin: read-only, first among the inlines of a threat's change page.
The threats app's admin knows nothing of agents (docs/layout.md): this module adds them to it."""

from django.contrib import admin

from threats.admin import ThreatAdmin, read_only

from .models import AgentRun


class AgentRunInline(admin.TabularInline):
    model = AgentRun
    extra = 0
    can_delete = False
    fields = read_only(AgentRun, ["kind", "status", "confidence", "duration_ms", "summary", "error"])
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


ThreatAdmin.inlines = [AgentRunInline, *ThreatAdmin.inlines]
