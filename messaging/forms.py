"""Forms of the Inbox: they parse and validate input; ``messaging.inbox`` does the writing."""

from __future__ import annotations

from django import forms

from messaging.inbox import REPLY_MAX_LENGTH
from messaging.models import CannedReply


class ReplyForm(forms.Form):
    body = forms.CharField(
        label="Reply",
        max_length=REPLY_MAX_LENGTH,
        strip=True,
        error_messages={"required": "Write a reply before sending."},
        widget=forms.Textarea(attrs={"rows": 4}),
    )


class CannedReplyPickForm(forms.Form):
    """The picker: a GET form that reloads the thread with the reply filled in."""

    canned = forms.ModelChoiceField(
        label="Canned reply", queryset=CannedReply.objects.none(), empty_label="Choose…"
    )

    def __init__(self, *args, queryset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["canned"].queryset = queryset


class CannedReplyForm(forms.ModelForm):
    class Meta:
        model = CannedReply
        fields = ["title", "body"]
        widgets = {"body": forms.Textarea(attrs={"rows": 3})}
