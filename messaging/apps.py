from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        # Imported here, not at the top: they use the models, which are loaded only once
        # every app config is.
        from messaging import receivers  # noqa: F401 - connects the signal receivers
        from messaging.patient_views import MESSAGES_PANEL
        from patients.panels import patient_panel_register

        patient_panel_register(MESSAGES_PANEL)
