"""The directory's link lists, rendered in Python.

A person with thousands of links gets thousands of rows; through the template engine each row cost
about twenty variable lookups and the page took half a second (``make bench``: ``directory_vs_sql``).
These functions build the markup from ``DirectoryLink`` values: every text from the database goes
through ``escape`` once; ids are integers; a console URL is percent-encoded ASCII. The small lists
are template tags (``{% load directory %}``); the client sections are put into the page by the view.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape as html_escape

from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from switchroles.selectors import ClientLinks, DirectoryLink


def escape(text: str) -> str:
    """HTML-escaped, and ASCII: other characters as numeric references. Python stores a string with
    one wider character at two or four bytes per character, so one "…" in a display name would
    double the size of the whole page as it is put together."""
    escaped = html_escape(text)
    return escaped if escaped.isascii() else escaped.encode("ascii", "xmlcharrefreplace").decode("ascii")


# The star: a toggle button, its state in aria-pressed. Entities rather than the stars themselves (see
# escape). No htmx attributes: directory.js posts it with htmx and swaps in the answer (this same
# button); without JavaScript it submits the page's hidden form to the same address.
_STAR = {
    True: 'class="link star" aria-pressed="true" aria-label="Favourite" title="Remove from favourites">&#9733;',
    False: 'class="link star" aria-pressed="false" aria-label="Favourite" title="Add to favourites">&#9734;',
}


def _favourite_button(role_id: int, is_favourite: bool, links_url_html: str) -> str:
    return (f'<button form="favourite-form" formaction="{links_url_html}{int(role_id)}/favourite/" '
            f"{_STAR[bool(is_favourite)]}</button>")


def favourite_button(role_id: int, is_favourite: bool, links_url: str) -> SafeString:
    return mark_safe(_favourite_button(role_id, is_favourite, escape(links_url)))  # noqa: S308 - escaped, ints


def _link(link: DirectoryLink, display_name_html: str, go_url_html: str) -> str:
    """The link through /go/ and the button copying its console URL, or why there is none."""
    if not link.url:
        return f'<span class="bad" title="{escape(link.problem)}">{display_name_html}: link unavailable</span>'
    # A console URL is percent-encoded ASCII: "&" is the only character in it HTML gives meaning to.
    return (f'<a class="go" href="{go_url_html}{int(link.role_id)}/">{display_name_html}</a> '
            f'<button type="button" class="secondary small" data-copy="{link.url.replace("&", "&amp;")}">'
            "Copy URL</button>")


def client_sections(clients: Iterable[ClientLinks], go_url: str, links_url: str) -> str:
    """One section per client, with a table row per link: tier chip, account, the link with its copy
    button, the star, and "why can I see this?" (directory.js inserts the answer as a row below).

    The filter matches the client's name and slug (said once, on the section), the account's name and
    ID, and the tier: what the display name is made of."""
    go_url, links_url = escape(go_url), escape(links_url)
    tiers: dict[str, str] = {}
    parts = []
    for group in clients:
        client_id, name, slug = int(group.client_id), escape(group.client_name), escape(group.client_slug)
        parts.append(
            f'<section class="client-links" data-filter-group data-filter-label="{name} {slug}" '
            f'data-client="{slug}" aria-labelledby="h-client-{client_id}"><h3 id="h-client-{client_id}">{name}</h3>'
            '<div class="table-wrap"><table class="links"><thead><tr><th scope="col">Tier</th>'
            '<th scope="col">Account</th><th scope="col">Link</th>'
            '<th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead><tbody>'
        )
        for link in group.links:
            role_id = int(link.role_id)
            account_name = escape(link.account_name)
            account_id = link.account_id if link.url else escape(link.account_id)  # with a URL: 12 digits
            tier = tiers.get(link.template_name) or tiers.setdefault(link.template_name, escape(link.template_name))
            parts.append(
                f'<tr data-filter-text="{account_name} {account_id} {tier}">'
                f'<td><span class="chip {link.color_class}">{tier}</span></td>'
                f'<td>{account_name} <code class="muted">{account_id}</code></td>'
                f"<td>{_link(link, escape(link.display_name), go_url)}</td>"
                f'<td class="row-actions"><div>{_favourite_button(role_id, link.is_favourite, links_url)}'
                f'<a class="why" href="{links_url}{role_id}/why/">Why can I see this?</a></div></td></tr>'
            )
        parts.append("</tbody></table></div></section>")
    return "\n".join(parts)


def _used(moment: datetime | None) -> str:
    return f' <span class="muted">used {escape(timesince(moment))} ago</span>' if moment else ""


def link_items(links: Iterable[DirectoryLink], go_url: str, show_when: bool = False) -> SafeString:
    """The compact list (favourites, recently used): chip, link, copy button, and when last used."""
    go_url = escape(go_url)
    items = [
        f'<li data-filter-text="{escape(link.filter_text)}">'
        f'<span class="chip {link.color_class}">{escape(link.template_name)}</span> '
        f"{_link(link, escape(link.display_name), go_url)}{_used(link.last_used_at) if show_when else ''}</li>"
        for link in links
    ]
    return mark_safe("\n".join(items))  # noqa: S308 - built above from escaped values and ints
