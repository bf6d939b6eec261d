from django.urls import path

from . import views

app_name = "stories"

urlpatterns = [
    path("stories/", views.story_list, name="list"),
    path("stories/<int:story_id>/", views.story_detail, name="detail"),
]
