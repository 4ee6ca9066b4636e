from __future__ import annotations

from decimal import Decimal

from django import forms

from billing.models import ClientBillingTerms


class MarkupForm(forms.ModelForm[ClientBillingTerms]):
    class Meta:
        model = ClientBillingTerms
        fields = ["markup_percent"]
        widgets = {"markup_percent": forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"})}

    def clean_markup_percent(self) -> Decimal:
        value: Decimal = self.cleaned_data["markup_percent"]
        # "+ 0" makes "-0" a plain zero, so the audit log never records a change from 0 to -0.
        return value + 0
