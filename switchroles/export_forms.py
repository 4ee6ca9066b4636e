"""The directory's export options: which links (all, favourites, one client) and the CLI prefix."""

from __future__ import annotations

from typing import Any

from django import forms

from switchroles.links import DEFAULT_PROFILE_PREFIX
from switchroles.selectors import ClientLinks


class ExportForm(forms.Form):
    scope = forms.ChoiceField(label="Which links", required=False)

    def __init__(self, *args: Any, clients: list[ClientLinks], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Added here, not declared: a form's own ``prefix`` attribute has that name.
        self.fields["prefix"] = forms.RegexField(
            regex=r"\A[a-z0-9._-]{0,16}\Z", required=False, initial=DEFAULT_PROFILE_PREFIX, max_length=16,
            help_text="Every profile's name starts with it, so none collides with one you have already.",
            error_messages={"invalid": "Use at most 16 lowercase letters, digits and . _ - characters."},
        )
        # The page lists hundreds of clients: its template writes these options itself, faster than
        # the widget's own templates would.
        self.client_choices = [(f"client:{group.client_slug}", f"{group.client_name} only") for group in clients]
        scope = self.fields["scope"]
        assert isinstance(scope, forms.ChoiceField)  # noqa: S101 - declared above
        scope.choices = [("all", "All my links"), ("favourites", "Favourites only"),
                                        ("client", "One client"), *self.client_choices]
        scope.initial = "all"

    def selection(self) -> dict[str, Any]:
        """Keyword arguments for ``selectors.link_exports_of_person``."""
        scope = self.cleaned_data.get("scope") or "all"
        if scope == "favourites":
            return {"favourites_only": True}
        if scope.startswith("client:"):
            return {"client_slug": scope.removeprefix("client:")}
        return {}

    def needs_a_client(self) -> bool:
        """"One client" was chosen without naming it: the next page asks which."""
        return self.cleaned_data.get("scope") == "client"

    def profile_prefix(self) -> str:
        prefix = self.cleaned_data.get("prefix")
        return DEFAULT_PROFILE_PREFIX if prefix is None or "prefix" not in self.data else prefix
