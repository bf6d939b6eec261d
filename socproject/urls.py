from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from threats import metrics, views
from threats.api import api

urlpatterns = [
    path("health", views.health, name="health"),
    path("ready", views.ready, name="ready"),
    path("metrics", metrics.metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on pages without a <link rel="icon"> (Django admin).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
    path("api/", api.urls),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("stories.urls")),  # /stories/ (docs/stories.md)
    path("", include("suppressions.urls")),  # /suppressions/ (docs/suppressions.md)
    path("", include("threats.urls")),
]

handler404 = "threats.views.not_found"
handler500 = "threats.views.server_error"
