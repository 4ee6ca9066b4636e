"""The request of a signed-in person, as views behind ``login_required`` (``capability_required``,
``contact_required``) receive it: ``request.user`` is a ``User``, never ``AnonymousUser``."""

from __future__ import annotations

from django.http import HttpRequest

from portal.people.models import User


class AuthenticatedRequest(HttpRequest):
    """Only an annotation: at run time it is the ``HttpRequest`` Django passes; the decorators
    that sign people in first are what make ``user`` a ``User``."""

    user: User
