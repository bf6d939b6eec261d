"""Stories in the admin: read-only (stitching builds them from verdicts, docs/stories.md) and scoped
to the user's customers, like campaigns."""

from django.contrib import admin
from django.utils.html import format_html

from threats.admin import HiddenTextMedia, TenantAdmin, read_only, revealed

from .models import Story


@admin.register(Story)
class StoryAdmin(HiddenTextMedia, TenantAdmin):
    list_display = ("id", "customer", "entity_kind", revealed(Story, "entity"), "severity", "progression",
                    "threat_count", "flagged_at", "last_seen", "page_link")
    list_filter = ("customer", "entity_kind", "severity")
    search_fields = ("entity",)
    list_select_related = ("customer",)
    date_hierarchy = "last_seen"
    show_full_result_count = False
    fields = readonly_fields = read_only(Story)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Tactics reached")
    def progression(self, obj):
        return " → ".join(tactic["name"] for tactic in obj.tactics) or "–"

    @admin.display(description="Page")
    def page_link(self, obj):
        return format_html('<a href="/stories/{}/">timeline</a>', obj.pk)
