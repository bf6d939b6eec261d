"""Pages: the stories list, one story as a timeline, and the story cards of a threat's detail page
(docs/stories.md). Alert text is only ever escaped by the templates; links are built here from ids."""

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from pydantic import ValidationError as SchemaError

from threats import access, services
from threats.views import _analyst, _common

from . import stitching
from .access import get_story_for_user
from .api import StoryFilters, story_page
from .cards import story_card
from .models import EntityKind

FILTER_NAMES = ("entity", "kind", "flagged", "customer", "cursor")


@login_required
def story_list(request):
    """Stories, the most recently active first; flagged ones carry a badge."""
    user = _analyst(request)
    items, next_cursor, error = [], None, None
    try:
        items, next_cursor = story_page(user, _filters(request.GET))
    except services.InvalidInput as exc:
        error = exc.detail
    except SchemaError as exc:
        error = "; ".join(f"Invalid {e['loc'][-1] if e['loc'] else 'filter'}: {e['msg']}." for e in exc.errors())
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {**_common(request), "latest_seq": services.latest_seq(), "stories": [_row(item) for item in items],
               "next_cursor": next_cursor, "filter_query": query.urlencode(), "error": error, "kinds": EntityKind.choices,
               "filters": {name: request.GET.get(name, "") for name in FILTER_NAMES}}
    return render(request, "stories/list.html", context, status=400 if error else 200)


@login_required
def story_detail(request, story_id):
    user = _analyst(request)
    latest_seq = services.latest_seq()  # read before the story: an event after it marks the page stale
    try:
        story = story_card(get_story_for_user(user, story_id))
    except access.NotFound:
        raise Http404("Story not found") from None
    return render(request, "stories/detail.html", {**_common(request), "latest_seq": latest_seq, "story": story})


def _row(item):
    chips = sorted(item["tactics"], key=lambda t: stitching.STAGE.get(t["id"], len(stitching.STAGE)))
    return {**item, "kind_label": EntityKind(item["entity_kind"]).label, "chips": chips,
            "last_seen": datetime.fromisoformat(item["last_seen"])}


def _filters(query):
    values = {name: query.get(name) for name in FILTER_NAMES if query.get(name)}
    for name in query:
        if name not in FILTER_NAMES:
            raise services.InvalidInput(name, f"Unknown parameter {name!r}.", list(FILTER_NAMES))
    return StoryFilters(**values, limit=50)
