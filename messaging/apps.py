from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"

    def ready(self) -> None:
        # Imported here: modules that use models load once the app registry is ready.
        from messaging.patient_views import MESSAGES_PANEL
        from patients.panels import patient_panel_register

        patient_panel_register(MESSAGES_PANEL)
