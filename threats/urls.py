from django.urls import path

from . import views

app_name = "threats"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("queue/", views.my_queue, name="queue"),
    path("threats/", views.threat_list, name="threat_list"),
    path("threats/<uuid:threat_id>/", views.threat_detail, name="threat_detail"),
]
