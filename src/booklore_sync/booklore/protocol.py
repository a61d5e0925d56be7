"""What the sync engine needs from the BookLore client: a small structural type, so the
engine depends on this protocol and not on the client's classes (tests may pass any
object that has these members). :class:`~booklore_sync.booklore.client.BookLoreClient`
satisfies it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from .capabilities import Capabilities
from .errors import BookLoreError
from .items import ServerItem, StatusResult
from .models import Book, KoreaderProgress
from .ratings import RatingOutcome
from .session_models import BatchResult, SessionIn

__all__ = ["SyncClient"]


@runtime_checkable
class SyncClient(Protocol):
    """The client as the sync engine uses it."""

    # accounts and capabilities (the client alone owns them)
    @property
    def has_booklore_account(self) -> bool: ...

    @property
    def has_koreader_account(self) -> bool: ...

    @property
    def capabilities(self) -> Capabilities | None: ...

    @property
    def batch_enabled(self) -> bool: ...

    def probe(self, *, force: bool = False) -> Capabilities: ...

    def has_route(self, kind: str) -> bool | None: ...

    def require_route(self, kind: str, *, method: str | None = None, path: str | None = None) -> None: ...

    def describe_server(self) -> str: ...

    # books
    def find_book_by_hash(self, fingerprint: str) -> Book | None: ...

    def get_book(self, book_id: int, *, with_description: bool = False) -> Book: ...

    def book_exists(self, book_id: int) -> bool: ...

    def diagnose_500(self, kind: str, book_id: int | None, err: BookLoreError) -> BookLoreError: ...

    # ratings
    def set_personal_rating_grouped(self, book_ids: Iterable[int], rating: int | None) -> RatingOutcome: ...

    # annotations and notes
    def create_annotation(
        self, book_id: int, *, cfi: str, text: str, color: str | None = None, style: str | None = None,
        note: str | None = None, chapter_title: str | None = None, check_book: bool = False,
    ) -> dict[str, Any]: ...

    def create_book_note_v2(
        self, book_id: int, *, cfi: str, note_content: str, selected_text: str | None = None,
        color: str | None = None, chapter_title: str | None = None, check_book: bool = False,
    ) -> ServerItem: ...

    def create_book_note_v1(self, book_id: int, *, content: str, title: str | None = None) -> ServerItem: ...

    def find_book_note_v1(
        self, book_id: int, *, title: str | None, content: str, exclude: Iterable[int] = ()
    ) -> int | None: ...

    # bookmarks
    def create_bookmark(
        self, book_id: int, *, cfi: str | None = None, title: str | None = None, page_number: int | None = None,
        check_book: bool = False,
    ) -> dict[str, Any]: ...

    def find_pdf_bookmark(
        self, book_id: int, *, title: str | None, page_number: int | None = None, exclude: Iterable[int] = ()
    ) -> int | None: ...

    # positions and status
    def put_progress(
        self, document: str, *, progress: str, percentage: float, device: str, device_id: str
    ) -> dict[str, Any]: ...

    def get_progress(self, document: str) -> KoreaderProgress | None: ...

    def post_book_progress(
        self, book_id: int, *, book_type: str, percentage: float, cfi: str | None = None, page: int | None = None
    ) -> None: ...

    def set_read_status(self, book_id: int, status: str) -> StatusResult: ...

    # sessions
    def post_session(self, book_id: int, book_type: str, session: SessionIn) -> None: ...

    def post_sessions_batch(self, book_id: int, book_type: str, sessions: Sequence[SessionIn]) -> BatchResult: ...

    def mark_no_batch(self, *, remember: bool | None = None) -> None: ...

    def verify_sessions(self, book_id: int, sessions: Sequence[SessionIn]) -> list[bool]: ...
