"""Which webhook URLs may be called (SSRF): http/https only; never link-local or cloud metadata
addresses (169.254.0.0/16, fe80::/10), unspecified or multicast ones; private, loopback and other
non-public ranges only with WEBHOOK_ALLOW_PRIVATE_NETWORKS. Checked when an endpoint is saved and
again, on the resolved addresses, before every attempt (a name may resolve differently later)."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def check_url(url, resolve=True):
    """Raise ValidationError unless `url` may be called; with `resolve`, check every address its
    host resolves to (without, only a literal address is checked: saving must work offline)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("Only http and https URLs with a host are allowed.")
    try:
        addresses = [ipaddress.ip_address(parts.hostname)]
    except ValueError:
        addresses = _resolve(parts.hostname, parts.port) if resolve else []
    for address in addresses:
        _check_address(address)


def _resolve(host, port):
    try:
        found = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError(f"{host} does not resolve ({exc}).") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


def _check_address(address):
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    if address.is_link_local or address.is_multicast or address.is_unspecified:
        raise ValidationError(f"{address} is a link-local, metadata, multicast or unspecified address: refused.")
    if not address.is_global and not settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS:
        raise ValidationError(f"{address} is a private or reserved address: refused "
                              "(WEBHOOK_ALLOW_PRIVATE_NETWORKS allows it).")
