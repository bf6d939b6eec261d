"""A suppression as the API, the pages and the socket push show it."""

from django.utils import timezone

from .models import ENTITY_FIELDS


def suppression_summary(suppression, now=None):
    return {
        "id": suppression.pk,
        "customer": suppression.customer.name,
        "customer_slug": suppression.customer.slug,
        "rule": suppression.rule,
        **{name: getattr(suppression, name) or None for name in ENTITY_FIELDS},
        "reason": suppression.reason,
        "author": suppression.author.get_username() if suppression.author else None,
        "created_at": suppression.created_at,
        "created_from": suppression.created_from,
        "expires_at": suppression.expires_at,
        "state": suppression.state(now or timezone.now()),
        "hit_count": suppression.hit_count,
        "last_hit_at": suppression.last_hit_at,
        "revoked_at": suppression.revoked_at,
        "revoked_by": suppression.revoked_by.get_username() if suppression.revoked_by else None,
        "expired_at": suppression.expired_at,
    }
