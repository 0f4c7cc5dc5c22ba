from django.urls import path, register_converter

from campaigns import patient_views, views
from campaigns.wizard import STEP_NAMES


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
    path("drip/", views.drip_list, name="drip_list"),
    path("drip/new/", views.drip_new, name="drip_new"),
    path("drip/new/<wizard_step:step>/", views.drip_wizard, name="drip_new_step"),
    path("drip/new/trigger-options/", views.drip_trigger_options, name="drip_new_trigger_options"),
    path("drip/new/audience-count/", views.drip_audience_count, name="drip_new_audience_count"),
    path("drip/new/discard/", views.drip_discard, name="drip_new_discard"),
    path("drip/<int:campaign_id>/edit/", views.drip_edit, name="drip_edit"),
    path(
        "drip/<int:campaign_id>/edit/<wizard_step:step>/",
        views.drip_wizard,
        name="drip_edit_step",
    ),
    path(
        "drip/<int:campaign_id>/edit/trigger-options/",
        views.drip_trigger_options,
        name="drip_edit_trigger_options",
    ),
    path(
        "drip/<int:campaign_id>/edit/audience-count/",
        views.drip_audience_count,
        name="drip_edit_audience_count",
    ),
    path("drip/<int:campaign_id>/edit/discard/", views.drip_discard, name="drip_edit_discard"),
    path("drip/<int:campaign_id>/toggle/", views.drip_toggle, name="drip_toggle"),
    path("sms-count/", views.sms_count, name="sms_count"),
    path("<int:campaign_id>/delete/", views.campaign_delete, name="campaign_delete"),
    # Blast campaigns
    path("blast/", views.blast_list, name="blast_list"),
    path("blast/new/", views.blast_new, name="blast_new"),
    path("blast/<int:campaign_id>/", views.blast_detail, name="blast_detail"),
    path("blast/<int:campaign_id>/edit/", views.blast_edit, name="blast_edit"),
    path("blast/<int:campaign_id>/enable/", views.blast_enable, name="blast_enable"),
    path(
        "blast/<int:campaign_id>/recipients/<int:patient_id>/",
        views.blast_recipient,
        name="blast_recipient",
    ),
    # The template library
    path("templates/", views.template_list, name="template_list"),
    path("templates/new/", views.template_new, name="template_new"),
    path("templates/<int:template_id>/edit/", views.template_edit, name="template_edit"),
    path("templates/folders/new/", views.template_folder_new, name="template_folder_new"),
    # The patient page's "why or why not?" panel (patients.panels)
    path("patients/<int:patient_id>/why/", patient_views.patient_why, name="patient_why"),
    path(
        "patients/<int:patient_id>/why/<int:campaign_id>/",
        patient_views.patient_campaign_why,
        name="patient_campaign_why",
    ),
]
