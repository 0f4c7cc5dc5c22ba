from django.urls import path

from messaging import outbox_views, patient_views, views

app_name = "messaging"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("sandbox/", views.sandbox, name="sandbox"),
    path("messages/", outbox_views.message_list, name="message_list"),
    path("canned/", views.canned_reply_add, name="canned_add"),
    path("canned/<int:pk>/delete/", views.canned_reply_remove, name="canned_delete"),
    path("unknown/<str:token>/", views.inbox_unknown, name="unknown_thread"),
    path("<int:patient_id>/", views.inbox_thread, name="thread"),
    path("<int:patient_id>/reply/", views.inbox_reply, name="reply"),
    # The patient page's message history (patients.panels)
    path(
        "<int:patient_id>/messages/",
        patient_views.patient_message_history,
        name="patient_messages",
    ),
]
