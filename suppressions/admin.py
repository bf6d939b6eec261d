"""Suppressions in the admin: read-only and scoped to the user's customers. They are saved through
the preview (the dashboard or POST /api/suppressions), never by a bare form that would skip it;
the one change here is the "Revoke" action, through the same service as the API."""

from django.contrib import admin, messages

from threats.access import AccessDenied, NotFound
from threats.admin import HiddenTextMedia, TenantAdmin, read_only

from . import services
from .models import Suppression


@admin.register(Suppression)
class SuppressionAdmin(HiddenTextMedia, TenantAdmin):
    list_display = ("id", "customer", "rule", "src_ip", "dst_ip", "user", "host", "state", "hit_count",
                    "last_hit_at", "author", "expires_at", "created_at")
    list_filter = ("customer", "rule")
    search_fields = ("rule", "reason", "src_ip", "dst_ip", "user", "host")
    list_select_related = ("customer", "author")
    date_hierarchy = "created_at"
    fields = readonly_fields = read_only(Suppression)
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="State")
    def state(self, obj):
        from django.utils import timezone

        return obj.state(timezone.now())

    @admin.action(description="Revoke the selected suppressions now")
    def revoke(self, request, queryset):
        done = 0
        for suppression in queryset:
            try:
                services.revoke(request.user, suppression.pk)
                done += 1
            except (AccessDenied, NotFound) as exc:
                self.message_user(request, f"#{suppression.pk}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} suppression(s) revoked.", messages.SUCCESS)
