from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self) -> None:
        # Imported here, not at the top: they use the models, which are loaded only once
        # every app config is.
        from campaigns import receivers  # noqa: F401 - connects the signal receivers
        from campaigns.engine.recheck import CAMPAIGN_RECHECK
        from campaigns.views.patient import WHY_PANEL
        from messaging.outbox.checks import pre_send_check_register
        from messaging.outbox.trust import TRUST_RECHECK
        from patients.panels import patient_panel_register

        # The outbox re-checks every campaign message with it just before sending.
        pre_send_check_register(CAMPAIGN_RECHECK)
        # Then consent, state hours and caps (DESIGN §5.8): after the campaign's own check,
        # so a message its campaign stops anyway is not counted as capped.
        pre_send_check_register(TRUST_RECHECK)
        patient_panel_register(WHY_PANEL)
