"""Template tags of the directory page: its small lists and the favourite star (see switchroles.rendering)."""

from django import template

from switchroles import rendering

register = template.Library()
register.simple_tag(rendering.favourite_button, name="favourite_button")
register.simple_tag(rendering.link_items, name="link_items")
