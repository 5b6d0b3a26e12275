"""`{% fixed %}…{% endfixed %}`: a part of a template drawn once per process and language.

For the parts of the page frame (`base.html`) that are the same on every
request in a language: the style sheets and scripts, the skip links, the
service's name, the demo notice, the footer. Their `{% url %}`, `{% static %}`
and translations cost a good part of a light page when drawn each time.

What goes inside must depend on nothing but the language and the settings:
no request, user, CSRF token, message, form or block. The drawn parts are
forgotten when a setting changes (tests) and with their template (the cached
loader's reset in development).
"""

import weakref

from django import template
from django.core.signals import setting_changed
from django.utils import translation

register = template.Library()

_nodes: "weakref.WeakSet[FixedNode]" = weakref.WeakSet()


class FixedNode(template.Node):
    def __init__(self, nodelist):
        self.nodelist = nodelist
        self.drawn: dict[str | None, str] = {}
        _nodes.add(self)

    def render(self, context):
        language = translation.get_language()
        try:
            return self.drawn[language]
        except KeyError:
            html = self.drawn[language] = self.nodelist.render(context)
            return html


@register.tag
def fixed(parser, token):
    if len(token.split_contents()) != 1:
        raise template.TemplateSyntaxError("{% fixed %} takes no argument")
    nodelist = parser.parse(("endfixed",))
    parser.delete_first_token()
    return FixedNode(nodelist)


def _forget(**kwargs):
    for node in list(_nodes):
        node.drawn.clear()


setting_changed.connect(_forget, dispatch_uid="portal.www.templatetags.fixed")
