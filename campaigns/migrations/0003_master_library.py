"""The operator's starter master library: one read-only folder every practice sees.

The operator manages it in the Django admin afterwards. Reversing removes exactly these
templates (and the folder, when nothing else is left in it).
"""

from django.db import migrations

FOLDER = "TrackStat library"
TEMPLATES = [
    {
        "name": "Happy birthday",
        "channel": "sms",
        "subject": "",
        "body": (
            "Happy birthday, {{PatientFirstName}}! Everyone at {{PracticeName}} wishes you "
            "a healthy and happy year ahead."
        ),
    },
    {
        "name": "New-patient welcome",
        "channel": "email",
        "subject": "Welcome to {{PracticeName}}, {{PatientFirstName}}",
        "body": (
            "<p>Hi {{PatientFirstName}},</p>\n"
            "<p>Thank you for choosing {{PracticeName}}. We are glad you are here and look "
            "forward to helping you feel your best.</p>\n"
            "<p>Questions before your next visit? Call us at {{PracticePhone}} or "
            '<a href="{{OnlineSchedulingLink}}">book online</a>.</p>\n'
            "<p>See you soon,<br>{{PracticeName}}</p>\n"
            '<p><small><a href="{{UnsubscribeLink}}">Unsubscribe</a></small></p>'
        ),
    },
    {
        "name": "Appointment reminder",
        "channel": "sms",
        "subject": "",
        "body": (
            "Hi {{PatientFirstName}}, a reminder of your appointment at {{PracticeName}} on "
            "{{AppointmentDate}} at {{AppointmentTime}}. Need to reschedule? Call "
            "{{PracticePhone}}."
        ),
    },
    {
        "name": "Missed appointment",
        "channel": "sms",
        "subject": "",
        "body": (
            "Hi {{PatientFirstName}}, we missed you today at {{PracticeName}}. Call "
            "{{PracticePhone}} and we will find you a new time."
        ),
    },
    {
        "name": "Reactivation",
        "channel": "sms",
        "subject": "",
        "body": (
            "Hi {{PatientFirstName}}, it has been a while! {{PracticeName}} would love to see "
            "you again. Book a visit: {{OnlineSchedulingLink}}"
        ),
    },
    {
        "name": "Post-visit check-in",
        "channel": "sms",
        "subject": "",
        "body": (
            "Hi {{PatientFirstName}}, thank you for visiting {{PracticeName}} today. How are "
            "you feeling? Reply to this message if you have any questions."
        ),
    },
]


def create_library(apps, schema_editor):
    TemplateFolder = apps.get_model("campaigns", "TemplateFolder")
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    folder, _ = TemplateFolder.objects.get_or_create(practice=None, name=FOLDER)
    for template in TEMPLATES:
        MessageTemplate.objects.get_or_create(
            practice=None,
            folder=folder,
            name=template["name"],
            defaults={k: template[k] for k in ("channel", "subject", "body")},
        )


def remove_library(apps, schema_editor):
    TemplateFolder = apps.get_model("campaigns", "TemplateFolder")
    MessageTemplate = apps.get_model("campaigns", "MessageTemplate")
    folder = TemplateFolder.objects.filter(practice=None, name=FOLDER).first()
    if folder is None:
        return
    MessageTemplate.objects.filter(
        folder=folder, practice=None, name__in=[t["name"] for t in TEMPLATES]
    ).delete()
    if not MessageTemplate.objects.filter(folder=folder).exists():
        folder.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0002_campaign_blastexclusion_messagestep_templatefolder_and_more"),
    ]

    operations = [migrations.RunPython(create_library, remove_library)]
