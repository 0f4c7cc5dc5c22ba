from django.urls import path

from reports import today_views

# The landing page ("home", where signing in leads) and the menu's "Today" are the same page.
urlpatterns = [
    path("", today_views.today, name="home"),
    path("today/", today_views.today, name="today"),
]
