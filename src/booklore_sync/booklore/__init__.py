"""BookLore client library: typed endpoints, both auth schemes, error types.

Public API::

    from booklore_sync.booklore import BookLoreClient, SessionIn, Capabilities
    from booklore_sync.booklore.errors import OfflineError, OutcomeUnknownError, ...
"""

from .auth import koreader_key
from .capabilities import CACHE_TTL_SECONDS, Capabilities, CapabilityCache, TokenStore
from .check import AccountCheck, ServerCheck, check_server
from .client import BookLoreClient, RatingOutcome, normalize_base_url
from .errors import (
    AlreadyExistsError,
    AuthError,
    BlankTextError,
    BookLoreError,
    BookNotFoundError,
    ConflictError,
    NotBookLoreError,
    NotConfiguredError,
    NotFoundError,
    NotJSONError,
    OfflineError,
    OutcomeUnknownError,
    RequestRejectedError,
    RouteMissingError,
    ServerError,
    SkipError,
    SyncDisabledError,
    UnknownRatingIdError,
    UnsupportedEndpointError,
    batch_refused,
)
from .items import Annotation, Bookmark, NoteV1, NoteV2, ServerItem, StatusResult
from .models import (
    BOOK_TYPES,
    Book,
    Health,
    KoreaderProgress,
    RatingResult,
    SearchResult,
    format_instant,
    normalize_hash,
    normalize_isbn,
    parse_time,
    truncate_utf16,
    utf16_len,
)
from .protocol import SyncClient
from .session_models import BatchResult, ServerSession, SessionIn, SessionPage
from .texts import CUT_MARKER, TEXT_COLUMN_BYTES, FittedText, fit_text_column
from .transport import NormalizedURL, RequestEvent, normalize_server_url

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
    "SkipError",
    "SyncDisabledError",
    "RouteMissingError",
    "BlankTextError",
    "BookNotFoundError",
    "ConflictError",
    "batch_refused",
    "Annotation",
    "Bookmark",
    "NoteV1",
    "NoteV2",
    "ServerItem",
    "StatusResult",
    "SyncClient",
    "CUT_MARKER",
    "TEXT_COLUMN_BYTES",
    "FittedText",
    "fit_text_column",
    "NormalizedURL",
    "RequestEvent",
    "normalize_server_url",
    "AccountCheck",
    "ServerCheck",
    "check_server",
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
