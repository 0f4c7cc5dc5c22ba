"""Form fields that pages of every app use."""

from __future__ import annotations

from django import forms


class BooleanChoiceField(forms.Field):
    """``true``/``false`` as a form (or htmx) posts it; anything else is an error."""

    TRUE = {"true", "1", "on", "yes"}
    FALSE = {"false", "0", "off", "no"}

    def to_python(self, value):
        text = str(value or "").strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise forms.ValidationError("Use true or false.", code="invalid")

    def validate(self, value):
        # ``required`` would reject False; to_python already rejected anything else.
        pass
