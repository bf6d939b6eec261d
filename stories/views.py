"""Pages: the stories list and one story as a timeline (docs/stories.md)."""

from django.contrib.auth.decorators import login_required
from django.http import Http404


@login_required
def story_list(request):
    raise Http404("Not yet")


@login_required
def story_detail(request, story_id):
    raise Http404("Not yet")
