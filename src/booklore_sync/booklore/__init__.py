"""BookLore client library: typed endpoints, both auth schemes, error types.

Public API::

    from booklore_sync.booklore import BookLoreClient, SessionIn, Capabilities
    from booklore_sync.booklore.errors import OfflineError, OutcomeUnknownError, ...
"""

from .auth import koreader_key
from .capabilities import CACHE_TTL_SECONDS, Capabilities, CapabilityCache, TokenStore
from .client import BookLoreClient, RatingOutcome, normalize_base_url
from .errors import (
    AlreadyExistsError,
    AuthError,
    BookLoreError,
    NotBookLoreError,
    NotConfiguredError,
    NotFoundError,
    NotJSONError,
    OfflineError,
    OutcomeUnknownError,
    RequestRejectedError,
    ServerError,
    UnknownRatingIdError,
    UnsupportedEndpointError,
    batch_refused,
)
from .models import (
    BOOK_TYPES,
    BatchResult,
    Book,
    Health,
    KoreaderProgress,
    RatingResult,
    SearchResult,
    ServerSession,
    SessionIn,
    SessionPage,
    format_instant,
    normalize_hash,
    normalize_isbn,
    parse_time,
    truncate_utf16,
    utf16_len,
)

__all__ = [
    "BookLoreClient",
    "RatingOutcome",
    "normalize_base_url",
    "koreader_key",
    "Capabilities",
    "CapabilityCache",
    "TokenStore",
    "CACHE_TTL_SECONDS",
    "BookLoreError",
    "OfflineError",
    "OutcomeUnknownError",
    "AuthError",
    "NotConfiguredError",
    "NotFoundError",
    "AlreadyExistsError",
    "RequestRejectedError",
    "UnknownRatingIdError",
    "UnsupportedEndpointError",
    "NotJSONError",
    "NotBookLoreError",
    "ServerError",
    "batch_refused",
    "BOOK_TYPES",
    "BatchResult",
    "Book",
    "Health",
    "KoreaderProgress",
    "RatingResult",
    "SearchResult",
    "ServerSession",
    "SessionIn",
    "SessionPage",
    "format_instant",
    "normalize_hash",
    "normalize_isbn",
    "parse_time",
    "truncate_utf16",
    "utf16_len",
]
