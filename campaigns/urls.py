from django.urls import path, register_converter

from campaigns.views import blasts, drip_page, drips, patient, shared, templates, wizard
from campaigns.views.wizard_state import STEP_NAMES


class WizardStepConverter:
    """One of the wizard's step names (name, audience, messages, goals, review)."""

    regex = "|".join(STEP_NAMES)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(WizardStepConverter, "wizard_step")

app_name = "campaigns"
urlpatterns = [
    # Drip campaigns and the wizard (a new campaign, or an existing one through the same steps)
    path("drip/", drips.drip_list, name="drip_list"),
    path("drip/new/", wizard.drip_new, name="drip_new"),
    path("drip/new/<wizard_step:step>/", wizard.drip_wizard, name="drip_new_step"),
    path("drip/new/trigger-options/", wizard.drip_trigger_options, name="drip_new_trigger_options"),
    path("drip/new/audience-count/", wizard.drip_audience_count, name="drip_new_audience_count"),
    path("drip/new/discard/", wizard.drip_discard, name="drip_new_discard"),
    path("drip/<int:campaign_id>/", drip_page.drip_detail, name="drip_detail"),
    path("drip/<int:campaign_id>/edit/", wizard.drip_edit, name="drip_edit"),
    path(
        "drip/<int:campaign_id>/edit/<wizard_step:step>/",
        wizard.drip_wizard,
        name="drip_edit_step",
    ),
    path(
        "drip/<int:campaign_id>/edit/trigger-options/",
        wizard.drip_trigger_options,
        name="drip_edit_trigger_options",
    ),
    path(
        "drip/<int:campaign_id>/edit/audience-count/",
        wizard.drip_audience_count,
        name="drip_edit_audience_count",
    ),
    path("drip/<int:campaign_id>/edit/discard/", wizard.drip_discard, name="drip_edit_discard"),
    path("drip/<int:campaign_id>/toggle/", drips.drip_toggle, name="drip_toggle"),
    path("sms-count/", shared.sms_count, name="sms_count"),
    path("<int:campaign_id>/delete/", drips.campaign_delete, name="campaign_delete"),
    # Blast campaigns
    path("blast/", blasts.blast_list, name="blast_list"),
    path("blast/new/", blasts.blast_new, name="blast_new"),
    path("blast/<int:campaign_id>/", blasts.blast_detail, name="blast_detail"),
    path("blast/<int:campaign_id>/edit/", blasts.blast_edit, name="blast_edit"),
    path("blast/<int:campaign_id>/enable/", blasts.blast_enable, name="blast_enable"),
    path(
        "blast/<int:campaign_id>/recipients/<int:patient_id>/",
        blasts.blast_recipient,
        name="blast_recipient",
    ),
    # The template library
    path("templates/", templates.template_list, name="template_list"),
    path("templates/new/", templates.template_new, name="template_new"),
    path("templates/<int:template_id>/edit/", templates.template_edit, name="template_edit"),
    path("templates/folders/new/", templates.template_folder_new, name="template_folder_new"),
    # The patient page's "why or why not?" panel (patients.panels)
    path("patients/<int:patient_id>/why/", patient.patient_why, name="patient_why"),
    path(
        "patients/<int:patient_id>/why/<int:campaign_id>/",
        patient.patient_campaign_why,
        name="patient_campaign_why",
    ),
]
