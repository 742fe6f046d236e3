"""Parsing of free-text dates of birth, the way people and forms actually write them.

A date of birth is a strong identity signal only if "1985-03-04", "04.03.1985"
and "4 March 1985" all become the same :class:`datetime.date`. The hard part
is the all-numeric form with slashes: "03/04/1985" is the 4th of March in the
United States and the 3rd of April almost everywhere else, so the caller says
which order to prefer (from the record's country).

Accepted shapes (after NFKC, so full-width digits work):

- year first: ``1985-03-04``, ``1985/3/4``, ``1985.03.04``, ``19850304``, an
  ISO timestamp (the time is ignored), ``1985年3月4日`` (also with 号, and the
  Korean 년/월/일);
- day and month first: ``04/03/1985``, ``4-3-85``; order by ``month_first``, but
  a first number above 12 can only be a day; dotted dates (``04.03.1985``) are
  always day first, no country writes month.day.year;
- month names in English, German, French and Spanish, full or abbreviated, in
  any order with a four-digit year: ``4 March 1985``, ``March 4, 1985``,
  ``4th Mar 1985``, ``4. März 1985``, ``1er mars 1985``, ``4 de marzo de 1985``.

Two-digit years come back as values below 100 for the caller to place in a
century (it knows "today"); range checks (future dates, ages over 120) are
the caller's too. Nothing here raises: anything else is ``None``.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from functools import lru_cache
from typing import Final

__all__ = ["parse_date_parts", "valid_date"]

MAX_DATE_TEXT: Final = 64

_YEAR_FIRST: Final = re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?:[T\s]+\d{1,2}:\d{2}.*)?")
_COMPACT: Final = re.compile(r"(\d{4})(\d{2})(\d{2})")
_CJK: Final = re.compile(r"(\d{4})\s*[年년]\s*(\d{1,2})\s*[月월]\s*(\d{1,2})\s*[日号號일]?")
_DAY_MONTH: Final = re.compile(r"(\d{1,2})([-/.\s])(\d{1,2})\2(\d{4}|\d{2})(?:[T\s]+\d{1,2}:\d{2}.*)?")
_WORDS: Final = re.compile(r"[a-z]+|\d+")

_MONTHS: Final[dict[str, int]] = {}
for _number, _names in enumerate(
    (
        "january jan januar janner janvier janv enero ene",
        "february feb februar fevrier fevr fev febrero",
        "march mar marz maerz mars marzo",
        "april apr avril avr abril abr",
        "may mai mayo",
        "june jun juni juin junio",
        "july jul juli juillet juil julio",
        "august aug aout agosto ago",
        "september sep sept septembre septiembre setiembre",
        "october oct oktober okt octobre octubre",
        "november nov novembre noviembre",
        "december dec dezember dez decembre diciembre dic",
    ),
    start=1,
):
    for _name in _names.split():
        _MONTHS[_name] = _number

_FILLER_TEXT: Final = """
st nd rd th er e eme o a de del of the le den am born on
monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thur thurs fri sat sun
"""
_FILLERS: Final = frozenset(_FILLER_TEXT.split())


def valid_date(year: int, month: int, day: int) -> bool:
    """True if year/month/day form a real calendar date (two-digit years allowed)."""
    try:
        date(year if year >= 100 else 2000 + year, month, day)
    except ValueError:
        return False
    return True


def _checked(year: int, month: int, day: int) -> tuple[int, int, int] | None:
    if 100 <= year < 1000 or not valid_date(year, month, day):
        return None
    return year, month, day


def _fold_ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _parse_words(text: str) -> tuple[int, int, int] | None:
    """ "4 March 1985", "March 4, 1985", "4. März 1985", "4 de marzo de 1985"."""
    month = 0
    numbers: list[str] = []
    for word in _WORDS.findall(_fold_ascii(text)):
        if word.isdigit():
            numbers.append(word)
        elif word in _MONTHS and not month:
            month = _MONTHS[word]
        elif word not in _FILLERS:
            return None
    if not month or len(numbers) != 2:
        return None
    years = [n for n in numbers if len(n) == 4]
    days = [n for n in numbers if len(n) <= 2]
    if len(years) != 1 or len(days) != 1:
        return None
    return _checked(int(years[0]), month, int(days[0]))


@lru_cache(maxsize=65536)
def parse_date_parts(text: str, month_first: bool) -> tuple[int, int, int] | None:
    """Parse ``text`` to ``(year, month, day)``; a year below 100 was written with two digits.

    ``month_first`` decides ambiguous slash or dash dates such as "03/04/1985".
    Returns None for anything that is not a recognisable calendar date.
    """
    s = unicodedata.normalize("NFKC", text).strip()
    if not s or len(s) > MAX_DATE_TEXT:
        return None
    if m := _YEAR_FIRST.fullmatch(s):
        return _checked(int(m[1]), int(m[3]), int(m[4]))
    if m := _COMPACT.fullmatch(s):
        return _checked(int(m[1]), int(m[2]), int(m[3]))
    if m := _CJK.fullmatch(s):
        return _checked(int(m[1]), int(m[2]), int(m[3]))
    if m := _DAY_MONTH.fullmatch(s):
        first, separator, second, year = int(m[1]), m[2], int(m[3]), int(m[4])
        if separator == "." or first > 12:
            month_first = False
        elif second > 12:
            month_first = True
        month, day = (first, second) if month_first else (second, first)
        return _checked(year, month, day)
    if any(ch.isalpha() for ch in s):
        return _parse_words(s)
    return None
