from django.urls import path

from . import views

app_name = "suppressions"

urlpatterns = [
    path("suppressions/", views.suppression_list, name="list"),
]
