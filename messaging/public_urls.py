"""Public URLs reached from messages (no sign-in): tracked links and unsubscribe links."""

from django.urls import path

from messaging import link_views

urlpatterns = [
    path("l/<str:token>", link_views.tracked_link, name="tracked_link"),
    path("unsubscribe/<str:token>/", link_views.unsubscribe, name="unsubscribe"),
]
