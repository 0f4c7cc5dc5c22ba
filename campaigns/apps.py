from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # Imported here: modules that use models load once the app registry is ready.
        from campaigns import receivers  # noqa: F401 - connects the signal receivers
        from campaigns.views.patient import WHY_PANEL
        from patients.panels import patient_panel_register

        patient_panel_register(WHY_PANEL)
