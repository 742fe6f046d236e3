"""Classifiers that read only profile columns, run on a thread while the attributes are computed.

Why this module exists: a refresh reads the profiles, then the events, then
computes the event attributes and runs the classifiers. Some classifiers
(geography, demographics) read nothing but profile columns, known before any
event is read, and they are Polars work that lets go of the GIL. Started on a
thread when the events have been read (the read keeps both cores busy; what
follows it runs mostly on one), they run beside the attributes frame and the
classifiers before them in the chain, which then takes their results instead
of running them (:meth:`EarlyClassifiers.pending`).

A classifier opts in by declaring ``reads``: the attribute columns (besides
``profile_id``) its result depends on. Its early result is used only if the
same ones of those columns are present in the frame the chain hands it as in
the profile frame it ran on; a column of the profile frame is the same series
in the chain's frame (no classifier may overwrite one), so the inputs are
equal and so is the result. Otherwise (a column added by the attributes or an
earlier classifier) the chain runs it as usual. An early run that fails is
forgotten: the chain runs that classifier again and raises as it would have.

The thread only reads the profile frame (immutable) and the tags config, and
is always joined when the ``with`` block of :class:`EarlyClassifiers` ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import polars as pl

from cdp.segments.classify.base import Classification, Classifier
from cdp.segments.config import TagsConfig


@dataclass(frozen=True)
class EarlyResult:
    """One classifier's result on the profile frame, and which of the columns it reads that frame had."""

    classification: Classification
    present: frozenset[str]

    def valid_for(self, classifier: Classifier, frame: pl.DataFrame) -> bool:
        """Whether the chain's ``frame`` gives ``classifier`` the same inputs the early run had."""
        return self.present == present_reads(classifier, frame)


def declared_reads(classifier: Classifier) -> tuple[str, ...] | None:
    """The columns ``classifier`` declares it reads (``reads``), or None when it does not declare them."""
    reads = getattr(classifier, "reads", None)
    if reads is None or isinstance(reads, str):
        return None
    return tuple(str(column) for column in reads)


def present_reads(classifier: Classifier, frame: pl.DataFrame) -> frozenset[str]:
    return frozenset(c for c in declared_reads(classifier) or () if c in frame.columns)


def profile_only(classifiers: Sequence[Classifier]) -> list[Classifier]:
    """The classifiers that declare the columns they read (each may run on the profile frame alone)."""
    return [c for c in classifiers if declared_reads(c) is not None]


def classify_early(
    classifiers: Sequence[Classifier], profiles: pl.DataFrame, config: TagsConfig
) -> dict[str, EarlyResult]:
    """Each classifier's result on ``profiles`` (one that raises is left out: the chain runs it again)."""
    out: dict[str, EarlyResult] = {}
    for classifier in classifiers:
        try:
            result = classifier.classify(profiles, config)
        except Exception:  # noqa: S112 - the chain runs it again and raises there, as it would without this
            continue
        out[classifier.name] = EarlyResult(result, present_reads(classifier, profiles))
    return out


class EarlyClassifiers:
    """The profile-only classifiers on a thread from :meth:`start` on; :meth:`results` waits for them.

    Use as a context manager: leaving it waits for the thread, so no thread is left
    running (a later read may fork only while this process runs a single thread).
    """

    def __init__(
        self, classifiers: Sequence[Classifier], profiles: pl.DataFrame, config: TagsConfig, *, threaded: bool = True
    ) -> None:
        self._chosen = profile_only(classifiers)
        self._profiles = profiles
        self._config = config
        self._threaded = threaded and bool(self._chosen)
        self._pool: ThreadPoolExecutor | None = None
        self._future: Future[dict[str, EarlyResult]] | None = None
        self._starting = threading.Lock()

    def __enter__(self) -> EarlyClassifiers:
        return self

    def start(self) -> None:
        """Start the thread (once; from any thread)."""
        with self._starting:
            if self._threaded and self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-early-classify")
                self._future = self._pool.submit(classify_early, self._chosen, self._profiles, self._config)

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def results(self) -> Mapping[str, EarlyResult]:
        """The early results (empty when not threaded: the chain then runs every classifier itself)."""
        if self._future is None:
            return {}
        try:
            return self._future.result()
        except Exception:
            return {}

    def pending(self) -> Mapping[str, EarlyResult]:
        """:meth:`results` as a mapping that waits for the thread only when first read: the chain
        runs the classifiers before these while they are computed."""
        return _Pending(self)


class _Pending(Mapping[str, EarlyResult]):
    def __init__(self, early: EarlyClassifiers) -> None:
        self._early = early

    def __getitem__(self, name: str) -> EarlyResult:
        return self._early.results()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._early.results())

    def __len__(self) -> int:
        return len(self._early.results())
