from django.urls import path

from campaigns import views

app_name = "campaigns"
urlpatterns = [
    path("drip/", views.drip_list, name="drip_list"),
    path("blast/", views.blast_list, name="blast_list"),
    path("templates/", views.template_list, name="template_list"),
]
