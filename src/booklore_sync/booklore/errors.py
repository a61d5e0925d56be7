"""Error types of the BookLore client.

Every error the client raises for a server interaction is a :class:`BookLoreError`.
Each one carries

* ``method`` — the HTTP method (``"GET"``, ``"POST"`` …);
* ``path`` — the API path without base URL or query string (``"/api/v1/books/42"``);
  never a secret;
* ``status`` — the HTTP status of the answer, or ``None`` when there was none;
* ``message`` — the server's message extracted per ``booklore-api.md`` §4.7, or a
  description of the network failure. Secrets are scrubbed from it.

The classes map onto the failure classification of ``booklore-api.md`` §5.2:

=========================  ===========================================================
class                      meaning for the engine
=========================  ===========================================================
OfflineError               nothing reached BookLore (connection refused, DNS, TLS,
                           connect timeout, a proxy's 503; a 502/504 on a GET) —
                           retry freely; if the health probe fails too: offline
OutcomeUnknownError        the request was (maybe) sent and no answer came (read
                           timeout, reset / closed connection, a 502/504 on a
                           write) — **never** success, **never** plain failure:
                           verify before resending non-idempotent writes
AuthError                  an account was rejected / rate-limited / refused
NotConfiguredError         the call needs an account that has no credentials
NotFoundError              404 (book id / hash / progress unknown)
AlreadyExistsError         409 or "already exists": the item is there — success
RequestRejectedError       400: the server refused the payload (validation …)
UnknownRatingIdError       400 "d != java.lang.String" on personal-rating (§8 #1)
UnsupportedEndpointError   the server has no such endpoint (capability missing)
NotJSONError               a 2xx that is not JSON where JSON was expected (web-UI
                           fallback, proxy page) — never success
NotBookLoreError           health probe: the URL does not answer as BookLore
ServerError                every other definite error answer (5xx, other 4xx, 3xx)
=========================  ===========================================================

Finer classes (subclasses, so code catching the classes above keeps working):

=========================  ===========================================================
SkipError                  base of the answers that make an item *skipped*, not failed
                           (nothing was stored; ``reason`` is the one-line text)
SyncDisabledError          401 "Sync is disabled for this user" on the kosync routes
                           (an :class:`AuthError` and a :class:`SkipError`): only the
                           progress pushes stop, the KOReader account stays usable
RouteMissingError          this server (release) has no route for a kind of item (an
                           :class:`UnsupportedEndpointError` and a :class:`SkipError`)
BlankTextError             a text the server refuses for good (blank): never sent
BookNotFoundError          404 "Book not found with ID: …": the book id is stale
ConflictError              409 that does not say "already exists": a failure
=========================  ===========================================================
"""

from __future__ import annotations

from typing import Any

# The public names are the classes below and ``batch_refused``; the package facade
# (``booklore_sync.booklore``) lists them in its ``__all__``.


class BookLoreError(Exception):
    """Base class of every client error. Never contains a password, key or token."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status

    @property
    def last_error(self) -> str:
        """The ``last_error`` text for the store: ``"HTTP <code>: <message>"``, or the
        bare message when there was no HTTP answer."""
        if self.status is not None:
            return f"HTTP {self.status}: {self.message}"
        return self.message

    def __str__(self) -> str:
        where = " ".join(p for p in (self.method, self.path) if p)
        prefix = f"{where}: " if where else ""
        return prefix + self.last_error

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(method={self.method!r}, path={self.path!r}, "
            f"status={self.status!r}, message={self.message!r}{self._repr_extra()})"
        )

    def _repr_extra(self) -> str:
        return ""


class SkipError(BookLoreError):
    """The item cannot be sent now, through no failure of its own: it is *skipped*
    (stays queued, no attempt counted). ``reason`` is the one-line text for the
    report and ``last_error``."""

    @property
    def reason(self) -> str:
        return self.message

    @property
    def last_error(self) -> str:
        return self.reason


class OfflineError(BookLoreError):
    """Nothing reached BookLore: connection refused, DNS failure, TLS failure, connect
    timeout, connection-pool timeout, a proxy's 503 (and 502/504 on a GET or on the
    health probe). The request can be retried freely.

    ``url`` is the server URL (base URL, no secret); ``cause`` classifies the failure:
    ``"dns"``, ``"refused"``, ``"timeout"``, ``"tls"`` (TLS spoken to a plain-HTTP
    server, or the reverse), ``"certificate"``, ``"unavailable"`` (a proxy's
    502/503/504), ``"pool"``, ``"other"``; ``hint`` is a suggestion such as
    ``"did you mean http://host:6060?"`` (or ``None``)."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        cause: str = "other",
        hint: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.url = url
        self.cause = cause
        self.hint = hint

    def _repr_extra(self) -> str:
        return f", url={self.url!r}, cause={self.cause!r}"


class OutcomeUnknownError(BookLoreError):
    """The request was (or may have been) sent, and no usable answer came: read or
    write timeout, connection reset or closed before/while the answer arrived (this
    includes a pooled keep-alive connection that the server had closed — httpx cannot
    tell whether the bytes left), or a 502/504 from a proxy on a write.

    The server may or may not have committed. Never count this as success or as a
    definite failure: idempotent calls may be retried, non-idempotent ones (sessions,
    v1 notes, bookmarks without a CFI) must be verified before any resend.
    """


class AuthError(BookLoreError):
    """An account problem.

    ``account``: ``"booklore"`` or ``"koreader"``.

    ``kind``:

    * ``"rejected"`` — wrong credentials (KOReader 403; BookLore login 400 "Invalid
      credentials"; a bearer still refused with 401 after a refresh);
    * ``"rate_limited"`` — login 429: no more bearer work in this run
      ("login rate-limited — wait 15 minutes");
    * ``"refused"`` — authenticated but not allowed (403 with a bearer: permission or
      library access; the server message says which);
    * ``"login_disabled"`` — the server allows only OIDC login (403 on login);
    * ``"not_linked"`` — 409, the KOReader account has no linked BookLore user;
    * ``"sync_disabled"`` — 401 "Sync is disabled for this user" (kosync routes).
    """

    def __init__(self, message: str, *, account: str, kind: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.account = account
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.account} account {self.kind}: {super().__str__()}"

    def _repr_extra(self) -> str:
        return f", account={self.account!r}, kind={self.kind!r}"


class NotConfiguredError(BookLoreError):
    """The call needs an account (``account`` = ``"booklore"`` / ``"koreader"``) for
    which no credentials were given. Nothing was sent."""

    def __init__(self, message: str, *, account: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.account = account

    def _repr_extra(self) -> str:
        return f", account={self.account!r}"


class NotFoundError(BookLoreError):
    """404 for an entity (a hash, a progress row, a file …), read by booklore-api.md
    §4.8. ``route_missing`` is True when the message is Spring's ``"Resource not
    found…"`` (the route does not exist on this server, not the entity). Only
    :class:`BookNotFoundError` says that a book id is unknown."""

    @property
    def route_missing(self) -> bool:
        return self.message.startswith("Resource not found")


class BookNotFoundError(NotFoundError):
    """404 ``"Book not found with ID: …"``: the book id is unknown to the server (the
    only 404 that clears a book's BookLore id, §4.8)."""


class AlreadyExistsError(BookLoreError):
    """409, or an error body containing "already exists": the item is already on the
    server. Callers treat it as success."""


class RequestRejectedError(BookLoreError):
    """400: the server refused the request (validation error, malformed body, data
    conflict such as an over-long string). ``details`` holds the validation details
    (``"<field>: <message>"``), possibly empty."""

    def __init__(self, message: str, *, details: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.details = list(details or [])

    @property
    def last_error(self) -> str:
        base = super().last_error
        if self.details:
            return f"{base} ({'; '.join(self.details)})"
        return base

    def _repr_extra(self) -> str:
        return f", details={self.details!r}"


class UnknownRatingIdError(RequestRejectedError):
    """400 ``"d != java.lang.String"`` from ``PUT /api/v1/books/personal-rating``: one
    id of the list is unknown or repeated (booklore-api.md §8 #1)."""


class UnsupportedEndpointError(BookLoreError):
    """The server has no such endpoint: a capability-dependent call (``capability`` =
    ``"by_hash_koreader"``, ``"by_hash_bearer"``, ``"search"``, ``"batch"``) was
    answered the way a server without it answers (web-UI HTML, ``Resource not found``
    404, 500, for the batch also 403/405/501). Nothing was stored. ``not_json`` is
    True when the answer was a non-JSON 2xx (the text/html trap)."""

    def __init__(self, message: str, *, capability: str, not_json: bool = False, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.capability = capability
        self.not_json = not_json

    def _repr_extra(self) -> str:
        return f", capability={self.capability!r}, not_json={self.not_json!r}"


class RouteMissingError(UnsupportedEndpointError, SkipError):
    """This server has no route for a kind of item (an older release, §0.1, §6 "route
    missing"): the kind's items are skipped, never failed, never unlinked.

    ``capability`` is the kind (``"annotations"``, ``"notes_v2"``, ``"bookmarks"``,
    ``"bookmark_update"``, ``"sessions"``, ``"ratings"``, ``"status"``); ``message``
    is the one-line reason naming the server and what is needed, e.g. ``this server
    (BookLore 1.16.3) has no annotation route; BookLore ≥ 1.18 or Grimmory needed``."""


class NotJSONError(BookLoreError):
    """A 2xx whose body is not JSON where JSON was expected (BookLore's web-UI
    fallback, a proxy or login page). Never success. ``content_type`` is the header
    that came (or ``None``)."""

    def __init__(self, message: str, *, content_type: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.content_type = content_type

    def _repr_extra(self) -> str:
        return f", content_type={self.content_type!r}"


class NotBookLoreError(BookLoreError):
    """The health probe's answer shows that the URL is not a BookLore server (base).

    ``reason``: ``"not_json"`` (a 2xx that is not BookLore's JSON — e.g. missing port,
    a proxy login page), ``"wrong_base_path"`` (404), ``"redirect"`` (a redirect;
    ``location`` is the URL to use instead), ``"unexpected_status"`` (another 4xx/3xx).
    ``url`` is the server URL that was checked."""

    def __init__(self, message: str, *, reason: str, url: str | None = None,
                 location: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason
        self.url = url
        self.location = location

    def _repr_extra(self) -> str:
        return f", reason={self.reason!r}"


class ServerError(BookLoreError):
    """A definite error answer not covered above: 5xx (except the proxy ones handled
    as offline / unknown), 4xx other than 400/404, a redirect that is not followed."""


class ConflictError(ServerError):
    """409 whose message does not say "already exists" (booklore: an
    ``IllegalStateException``'s text; grimmory: ``"A conflict occurred."``). A failure
    carrying the server's text, never "already there" (§4.8)."""


class SyncDisabledError(AuthError, SkipError):
    """401 ``"Sync is disabled for this user"`` on the two kosync progress routes: the
    KOReader account's "Sync" switch is off (a new account's default). Only the
    progress pushes are affected; the account stays usable for by-hash and sessions."""

    REASON = (
        "enable Sync for this KOReader user in BookLore/Grimmory settings "
        "(or set sync.progress = false)"
    )

    def __init__(self, message: str, **kw: Any) -> None:
        kw.setdefault("account", "koreader")
        kw.setdefault("kind", "sync_disabled")
        super().__init__(message, **kw)

    @property
    def reason(self) -> str:
        return self.REASON


class BlankTextError(SkipError, ValueError):
    """A text the server refuses for good (empty, or blank where it needs non-blank
    text): it is never sent (booklore-api.md §8 #23)."""

    REASON = "blank text: nothing to send"

    def __init__(self, message: str = REASON, **kw: Any) -> None:
        super().__init__(message, **kw)


_BATCH_REFUSED_STATUSES = frozenset({403, 405, 500, 501})


def batch_refused(exc: BaseException) -> bool:
    """True when an error from ``POST /api/v1/reading-sessions/batch`` means "this
    server has no usable batch endpoint" (booklore-api.md §6, probe 6): 403, 405, 500,
    501, a 404 that is not ``"Book not found with ID: …"``, or a non-JSON 2xx.

    False for a 400 (payload problem), a 404 "Book not found…" (unknown book),
    502/503/504 and network errors (transient), authentication problems handled by the
    client, and anything else. :meth:`BookLoreClient.post_sessions_batch` already raises
    :class:`UnsupportedEndpointError` (and calls ``mark_no_batch()``) in these cases;
    this helper accepts both forms.
    """
    if isinstance(exc, UnsupportedEndpointError):
        return exc.capability == "batch"
    if isinstance(exc, NotJSONError):
        return True
    if isinstance(exc, (OfflineError, OutcomeUnknownError, NotConfiguredError)):
        return False
    if isinstance(exc, AuthError):
        # a bearer refused after refresh / rate limit is an account problem; a KOReader
        # 403 on the batch route of upstream or fork-2675 is a refusal of the route.
        return exc.account == "koreader" and exc.status == 403
    if not isinstance(exc, BookLoreError) or exc.status is None:
        return False
    if exc.status in _BATCH_REFUSED_STATUSES:
        return True
    if exc.status == 404:
        return not exc.message.startswith("Book not found")
    return False
