"""Webhook endpoints, their deliveries and the dead-letter list. Superusers only: an endpoint may
receive every customer's threats and stories, so a customer-scoped staff user must not see or add one."""

from django.contrib import admin, messages
from django.db import models

from . import tasks
from .models import DeadLetter, WebhookDelivery, WebhookEndpoint


class SuperuserOnly:
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    has_add_permission = has_change_permission = has_delete_permission = has_view_permission


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ["name", "url", "analyzed_min_severity", "on_closed", "story_flagged_min_severity", "active"]
    list_filter = ["active", "on_closed", "analyzed_min_severity", "story_flagged_min_severity"]
    filter_horizontal = ["customers"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


class DeliveryAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ["created_at", "event", "endpoint", "threat_id", "story_id", "status", "attempts", "last_status_code", "last_error"]
    list_filter = ["status", "event", "endpoint"]
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
    actions = ["retry_now"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry now (a fresh round of attempts)")
    def retry_now(self, request, queryset):
        count = tasks.retry_now(queryset)
        self.message_user(request, f"{count} deliver{'y' if count == 1 else 'ies'} queued again.", messages.SUCCESS)


admin.site.register(WebhookDelivery, DeliveryAdmin)
admin.site.register(DeadLetter, DeliveryAdmin)
