from django.urls import path

from patients import views

app_name = "patients"
urlpatterns = [
    path("", views.patient_list, name="list"),
    path("bulk-tag/", views.patients_bulk_tag, name="bulk_tag"),
    path("import/", views.patients_import, name="import"),
    path("appointment-requests/", views.appointment_requests, name="appointment_requests"),
    path("<int:pk>/", views.patient_detail, name="detail"),
    path("<int:pk>/tags/", views.patient_tag_add, name="tag_add"),
    path("<int:pk>/tags/<int:tag_id>/remove/", views.patient_tag_remove, name="tag_remove"),
    path("<int:pk>/opt-out/", views.patient_opt_out, name="opt_out"),
    path("<int:pk>/consent/", views.patient_marketing_consent, name="marketing_consent"),
]
