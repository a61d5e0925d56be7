"""Personal ratings (booklore-api.md §3.13, §8 #1): one request per group of books
with the same rating, one by one when the group is refused."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .core import RATING_PATH
from .errors import RequestRejectedError, ServerError, UnknownRatingIdError
from .models import RatingResult
from .writes import WritesMixin

__all__ = ["RatingsMixin", "RatingOutcome", "RATING", "MAX_RATING_IDS"]

RATING = RATING_PATH
MAX_RATING_IDS = 500


@dataclass(frozen=True)
class RatingOutcome:
    """Result of :meth:`RatingsMixin.set_personal_rating_grouped`: the ratings the
    server confirmed and the ids it does not know (to be unmatched)."""

    results: tuple[RatingResult, ...]
    unknown_ids: tuple[int, ...]


class RatingsMixin(WritesMixin):
    """``PUT /api/v1/books/personal-rating``."""

    def set_personal_rating(self, book_ids: Iterable[int], rating: int | None) -> list[RatingResult]:
        """``PUT /api/v1/books/personal-rating`` (bearer; upsert). Ids are de-duplicated
        (order kept); at most 500. A 400 ``"d != java.lang.String"`` (an unknown id in
        the list) raises :class:`UnknownRatingIdError`."""
        ids = list(dict.fromkeys(int(i) for i in book_ids))
        if len(ids) > MAX_RATING_IDS:
            raise ValueError(f"at most {MAX_RATING_IDS} ids per request")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int)):
            raise TypeError("rating must be an int or None")
        self.require_route("ratings", method="PUT", path=RATING)
        resp = self._request("PUT", RATING, auth="bearer", json_body={"ids": ids, "rating": rating}, idempotent=True)
        if self._route_missing_answer(resp):
            raise self._route_gone("ratings", "PUT", RATING, resp.status_code)
        if 200 <= resp.status_code < 300:
            data = self._json_ok(resp, "PUT", RATING)
            if not isinstance(data, list):
                raise self._bad_shape("PUT", RATING, resp.status_code, "not a list")
            out = []
            for item in data:
                if isinstance(item, dict) and item.get("bookId") is not None:
                    pr = item.get("personalRating")
                    out.append(RatingResult(int(item["bookId"]), int(pr) if isinstance(pr, (int, float)) else None))
            return out
        err = self._fail(resp, "PUT", RATING, "bearer")
        if isinstance(err, ServerError) and err.status == 500 and self.has_route("ratings") is None:
            if not self.learn_route("ratings"):
                raise self._route_gone("ratings", "PUT", RATING, 500)
        if isinstance(err, RequestRejectedError) and "java.lang.String" in err.message:
            raise UnknownRatingIdError(
                err.message, details=err.details, method="PUT", path=RATING, status=err.status
            )
        raise err

    def set_personal_rating_grouped(self, book_ids: Iterable[int], rating: int | None) -> RatingOutcome:
        """§8 #1: try the whole group; on :class:`UnknownRatingIdError` retry each id
        alone, collecting the ids the server does not know. Other errors propagate
        (the call is an upsert: repeating it is safe)."""
        ids = list(dict.fromkeys(int(i) for i in book_ids))
        if not ids:
            return RatingOutcome((), ())
        try:
            return RatingOutcome(tuple(self.set_personal_rating(ids, rating)), ())
        except UnknownRatingIdError:
            if len(ids) == 1:
                return RatingOutcome((), (ids[0],))
        results: list[RatingResult] = []
        unknown: list[int] = []
        for book_id in ids:
            try:
                results.extend(self.set_personal_rating([book_id], rating))
            except UnknownRatingIdError:
                unknown.append(book_id)
        return RatingOutcome(tuple(results), tuple(unknown))
