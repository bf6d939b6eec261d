"""{% load hidden_text %}: `|reveal` for text (styled markers), `|reveal_text` where markup cannot
go (attributes, <title>, <option>). Both after autoescaping's rules: see threats/hidden_text.py."""

from django import template

from threats import hidden_text

register = template.Library()


@register.filter(is_safe=True)
def reveal(value):
    return hidden_text.reveal_html(value)


@register.filter(is_safe=True)
def reveal_text(value):
    return hidden_text.reveal_text(value)
