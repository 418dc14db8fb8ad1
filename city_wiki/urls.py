"""URL configuration: the admin, the image-ranking dashboard, and media in development."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("image-ranking/", include("image_ranking.urls")),
    path("", RedirectView.as_view(url="/image-ranking/", permanent=False)),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
