"""The template library's forms: a template (its body checked as a campaign step's) and a
folder."""

from __future__ import annotations

from django import forms

from campaigns.forms.messages import message_validate
from campaigns.models import MessageTemplate, TemplateFolder
from messaging.models import Channel
from trackstat.models import Practice


class TemplateForm(forms.Form):
    folder = forms.ModelChoiceField(label="Folder", queryset=TemplateFolder.objects.none())
    name = forms.CharField(label="Template name", max_length=200)
    channel = forms.ChoiceField(label="Channel", choices=Channel.choices)
    subject = forms.CharField(label="Subject (email)", required=False, max_length=200)
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 8}))

    def __init__(self, *args, practice: Practice, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["folder"].queryset = TemplateFolder.objects.filter(practice=practice)

    @staticmethod
    def initial_from(template: MessageTemplate) -> dict:
        return {
            "folder": template.folder_id,
            "name": template.name,
            "channel": template.channel,
            "subject": template.subject,
            "body": template.body,
        }

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        message, errors = message_validate(
            {"channel": cleaned["channel"], "subject": cleaned["subject"], "body": cleaned["body"]},
            with_delay=False,
        )
        for name, messages in errors.items():
            for text in messages:
                self.add_error(name if name in self.fields else None, text)
        if message:
            cleaned["subject"], cleaned["body"] = message["subject"], message["body"]
        return cleaned


class FolderForm(forms.Form):
    name = forms.CharField(label="Folder name", max_length=200)
