"""Project middleware: every /api/ answer stays JSON (including the 405 that django-ninja renders as
plain text), every response carries a Content-Security-Policy (and HSTS when served over HTTPS),
and the rate limits of docs/security.md answer 429 with Retry-After."""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpResponse

from . import apikeys, audit, hidden_text, ratelimit


class TrustedProxyMiddleware:
    """Drops X-Forwarded-For and X-Forwarded-Proto unless the TCP peer is a trusted proxy
    (TRUSTED_PROXY_COUNT > 0 and REMOTE_ADDR in TRUSTED_PROXIES), before anything reads them: a
    client reaching a pod directly names neither its address nor its scheme (docs/security.md)."""

    HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not (settings.TRUSTED_PROXY_COUNT and ratelimit.trusted_proxy(request.META.get("REMOTE_ADDR", ""))):
            for name in self.HEADERS:
                request.META.pop(name, None)
        return self.get_response(request)


MAX_QUERY_STRING = 8192  # nginx's default request-line buffer (8 KB): both run modes answer alike


class UriTooLongMiddleware:
    """414 for a query string over MAX_QUERY_STRING bytes, before anything reads it: no filter or
    search takes that much, and a truncated one would answer for a different question (issue 23)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if len(request.META.get("QUERY_STRING", "")) > MAX_QUERY_STRING:
            detail = f"URI too long: the query string may have at most {MAX_QUERY_STRING} bytes."
            if request.path.startswith("/api/"):
                return hidden_text.json_response({"detail": detail}, status=414)
            return HttpResponse(detail, status=414, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class JsonApiErrorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 405 and request.path.startswith("/api/"):
            allowed = response.get("Allow", "")
            response = hidden_text.json_response({"detail": f"Method not allowed. Allowed: {allowed}."}, status=405)
            response["Allow"] = allowed
        return response


class ContentSecurityPolicyMiddleware:
    """A Content-Security-Policy without inline script or style: every page loads only its own
    vendored files, and a hostile alert field that slipped past escaping could still not run.
    The WebSocket is allowed on the page's own host (`ws:` and `wss:`, as the page was served)."""

    POLICY = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "
        "connect-src 'self' ws://{host} wss://{host}"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            policy = self.POLICY.format(host=_host(request))
            if settings.SERVED_OVER_HTTPS:  # never a plain-text socket from an HTTPS page
                policy = policy.replace(f" ws://{_host(request)}", "")
            response["Content-Security-Policy"] = policy
        return response


class StrictTransportSecurityMiddleware:
    """HSTS on every response when the site is served over HTTPS. Django's SecurityMiddleware adds
    it only when the request itself looks secure, and behind the chart's nginx (which speaks plain
    HTTP to the pods and says so in X-Forwarded-Proto) it never does; browsers ignore the header on
    plain-HTTP responses, so sending it always is safe."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.SECURE_HSTS_SECONDS and "Strict-Transport-Security" not in response:
            value = f"max-age={settings.SECURE_HSTS_SECONDS}"
            response["Strict-Transport-Security"] = value + ("; includeSubDomains" if
                                                             settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else "")
        return response


class RateLimitMiddleware:
    """Limits every /api/ call, whatever its method, per session user and per API key; a request
    with neither, or with a key that does not verify, counts against its client address (so a
    wrong key can neither spend a real key's budget nor escape the anonymous limit). Turns a
    throttled login (access.ThrottledModelBackend) into 429, and records the client address for
    the audit log of this request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        ip = ratelimit.request_ip(request)
        token = audit.client_ip.set(ip)
        try:
            response = self._refusal(request, ip) or self.get_response(request)
        finally:
            audit.client_ip.reset(token)
        retry_after = getattr(request, "login_throttled", None)
        if retry_after:
            return too_many(request, retry_after, "Too many failed logins: try again later.")
        return response

    def _refusal(self, request, ip):
        if not request.path.startswith("/api/"):
            return None
        for name, ident in _rate_identities(request, ip):
            verdict = ratelimit.hit(name, ident)
            if not verdict.allowed:
                audit.record("ratelimit.refused", request.user, outcome="refused", ip=ip, limit=name,
                             path=request.path)
                return too_many(request, verdict.retry_after)
        return None


def _rate_identities(request, ip):
    """The (limit, identity) pairs one /api/ request counts against."""
    identities = [("user", request.user.pk)] if request.user.is_authenticated else []
    if request.headers.get(apikeys.HEADER):
        key = apikeys.request_key(request)
        identities.append(("key", key.pk) if key else ("anonymous", ip))
    return identities or [("anonymous", ip)]


def too_many(request, retry_after, detail="Too many requests: slow down."):
    if request.path.startswith("/api/"):
        response = hidden_text.json_response({"detail": detail, "field": None}, status=429)
    else:
        response = HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response


def _host(request):
    try:
        return request.get_host()
    except DisallowedHost:  # a refused Host header still gets a policy, just without a socket host
        return "invalid.invalid"


class WebSocketOriginValidator:
    """ASGI middleware for /ws: the handshake's single Origin must be the socket's own origin
    (scheme, and the Host header, which must be one of ALLOWED_HOSTS) or one of WS_ALLOWED_ORIGINS,
    compared exactly after lower-casing and dropping default ports. A missing, `null`, malformed
    or repeated Origin, a sibling subdomain, the other scheme or another port is refused before
    the consumer runs (cross-site WebSocket hijacking; docs/security.md). Unlike
    AllowedHostsOriginValidator it never depends on a wildcard-free ALLOWED_HOSTS."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        reason = origin_refusal(scope)
        if reason is None:
            return await self.application(scope, receive, send)
        from channels.security.websocket import WebsocketDenier

        from . import metrics

        metrics.WS_CONNECTS.labels("refused").inc()
        audit.record("ws.refused", None, outcome="refused", ip=ratelimit.scope_ip(scope), reason=reason,
                     origin=_headers(scope, b"origin")[:1])
        return await WebsocketDenier()(scope, receive, send)


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_refusal(scope):
    """Why the handshake's Origin is refused, or None."""
    origins, hosts = _headers(scope, b"origin"), _headers(scope, b"host")
    if len(origins) != 1:
        return "no Origin" if not origins else "repeated Origin"
    origin = normalise_origin(origins[0])
    if origin is None:
        return "malformed Origin"
    if origin in {normalise_origin(allowed) for allowed in settings.WS_ALLOWED_ORIGINS}:
        return None
    if not hosts:
        # No Host header: never from a browser (HTTP/1.1 requires it), so no victim's cookies ride
        # on it; in-process test clients send none. The origin's host must still be allowed.
        return None if _allowed_host(origin.split("://", 1)[1]) else "foreign Origin"
    if len(hosts) != 1 or not _allowed_host(hosts[0]):
        return "Host not allowed"
    own = normalise_origin(f"{_scheme(scope)}://{hosts[0]}")
    return None if origin == own else "foreign Origin"


def normalise_origin(text):
    """`scheme://host[:port]` lower-cased without a default port, or None when it is not an origin."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path or parts.query or parts.username:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = "" if port in (None, DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host.lower()}{port}"


def _headers(scope, name):
    return [value.decode("latin-1") for key, value in scope.get("headers", []) if key.lower() == name]


def _scheme(scope):
    forwarded = _headers(scope, b"x-forwarded-proto")
    peer = (scope.get("client") or ("", 0))[0] or ""
    if settings.SECURE_PROXY_SSL_HEADER and forwarded and ratelimit.trusted_proxy(peer):
        return "https" if forwarded[-1].strip().lower() == "https" else "http"
    return "https" if scope.get("scheme") == "wss" else "http"


def _allowed_host(host):
    from django.http.request import split_domain_port, validate_host

    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
