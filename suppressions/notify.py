"""`suppression.created`, `suppression.revoked` and `suppression.expired` on /ws (docs/websocket.md,
docs/suppressions.md): pushed after commit to the broadcast group and sent by each socket only when
its user may see the suppression's customer. Ephemeral, like `threat.progress`:
no seq, not in the event log, not replayed (a suppression is not a threat; its page reloads the list)."""

import json

from threats import events

from .serializers import suppression_summary


def push(event_type, suppression):
    text = json.dumps({"type": event_type, "suppression": suppression_summary(suppression)}, default=str)
    events.send_to_group(events.GROUP, {"type": event_type, "customer_slug": suppression.customer.slug, "text": text})
