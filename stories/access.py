"""Who may read which story: the threats' view permission and customer scope (threats/access.py).
A story is one customer's, so its alerts are visible to whoever sees the story."""

from threats import access

from .models import Story


def visible_stories(who):
    access.check_permission(who, access.VIEW_PERMISSION)
    return access.scoped(Story.objects.select_related("customer"), who)


def get_story_for_user(who, story_id):
    """The one access check for a single story, shared by the API and the pages: NotFound outside the scope."""
    story = visible_stories(who).filter(pk=story_id).first()
    if story is None:
        raise access.NotFound("Story not found.")
    return story


def stories_of(threat):
    """The stories a threat belongs to (one per entity at most), newest first: same customer as the threat."""
    return list(Story.objects.filter(links__threat=threat).select_related("customer").order_by("-last_seen", "-id"))
