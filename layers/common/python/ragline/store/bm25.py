"""BM25 scored in the client: the query's postings read in one statement, ranked in numpy.

``bm25_search`` (migrations 0006, 0010, 0012) ranks in plpgsql, row by row; here the same
ranking is computed from the same blocks (``bm25_blocks``) with numpy. One statement
reads the collection's statistics, the query's terms (id, df and IDF, computed by the
server as ``bm25_search`` computes them) and each term's postings as one ``bytea``: its
blocks' ``postings`` concatenated server-side (``string_agg``), nothing unpacked. A block
stores its postings (0012) as fixed 14-byte records in chunk id order, each the chunk id
(int64), the term frequency (int16) and the chunk's length (int32), big-endian as
PostgreSQL's ``int8send``, ``int2send`` and ``int4send`` write them, so a term's postings
are one numpy record array (``POSTING``). The commonest terms come as their blocks' keys
alone; their blocks are read when MaxScore looks them up (``WHOLE_MAX_DF``).

The scores are ``bm25_term``'s (0006), bit for bit: the same float64 operations in the
same order, the same rounding to a multiple of 2^-32 (half to even, as PostgreSQL's
``round(float8)``), so sums are exact whatever their order, and the ranking (score
descending, chunk id ascending) is ``bm25_search``'s. MaxScore prunes as it does: a floor
from the rarest terms' best chunks, scored in full; the commonest terms whose bounds
sum below the floor are optional, looked up (a binary search) only for the chunks that
hold an essential term and could still reach the floor.

psycopg only: binary results, and a term's postings can exceed the Data API's 1 MiB
response limit (that driver keeps ``bm25_search``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import psycopg

K1 = 1.2
B = 0.75
# 2^32: a term's share is rounded to a multiple of its inverse (bm25_term).
_SCALE = 4294967296.0
# Sums of floats: a chunk exactly at the floor must never be dropped (as bm25_search).
_SLACK = 1e-9
# A posting as a block stores it (migration 0012's bm25_pack).
POSTING = np.dtype([("id", ">i8"), ("tf", ">i2"), ("length", ">i4")])

# Terms in more chunks than this are not read whole up front: their block keys only
# (8 bytes a block of 128), then the blocks that may hold a candidate's posting, on demand.
# MaxScore looks the commonest terms up for few chunks, and reading them whole is most of
# the cost of a query at a million chunks (a term in half of them: 7 MB).
WHOLE_MAX_DF = 16384

# The essential terms' postings are summed by chunk id in arrays indexed by the id (9
# bytes an id of their span: 18 MB at this bound) while their ids span at most this many
# plus 8 a posting, and sorted beyond. At a million chunks they always span less, and
# the sort was a fifth of the ranking.
DENSE_SPAN = 1 << 21

# Without an ORDER BY: the blocks come in one order, in practice the primary key's; the
# client sorts by chunk id if not (an ordered aggregate sorts its input again: a quarter
# of the statement's time).
_POSTINGS = "string_agg(k.postings, ''::bytea)"

# The statistics, then a row per query term present in the collection (none: one row
# with NULL term): its blocks' postings concatenated, or for a common term its blocks'
# keys. n_chunks, avg_length and idf are the expressions of bm25_search, so the same
# float64 bits.
POSTINGS = f"""
WITH s AS (
    SELECT b.chunks::double precision AS n_chunks,
           b.tokens::double precision / greatest(b.chunks, 1) AS avg_length
    FROM bm25_collections b WHERE b.collection = %(c)s AND b.chunks > 0
)
SELECT s.n_chunks, s.avg_length, t.id, t.df,
       ln(1 + (s.n_chunks - t.df + 0.5) / (t.df + 0.5)), p.postings, r.keys
FROM s
LEFT JOIN bm25_terms t
  ON t.collection = %(c)s AND t.df > 0
 AND t.lexeme IN (SELECT q.lexeme FROM unnest(to_tsvector('english', %(t)s)) q)
LEFT JOIN LATERAL (
    SELECT {_POSTINGS}
    FROM bm25_blocks k WHERE k.term = t.id AND t.df <= %(whole)s
) p(postings) ON true
LEFT JOIN LATERAL (
    SELECT string_agg(int8send(k.last_id), ''::bytea ORDER BY k.last_id)
    FROM bm25_blocks k WHERE k.term = t.id AND t.df > %(whole)s
) r(keys) ON true
"""

# Every block of these terms.
WHOLE = f"SELECT k.term, {_POSTINGS} FROM bm25_blocks k WHERE k.term = ANY(%s) GROUP BY k.term"

# The blocks of a term with these keys (a probe of the primary key for each).
BLOCKS = (
    f"SELECT k.term, {_POSTINGS} FROM bm25_blocks k"
    " WHERE k.term = %s AND k.last_id = ANY(%s) GROUP BY k.term"
)


@dataclass
class Term:
    """A query term's postings at hand: chunk ids ascending, with each chunk's term
    frequency and length. All of them, or (``keys`` set) those of the blocks read so far:
    ``keys`` is every block's last chunk id, ``read`` which of them are here."""

    id: int
    df: int
    idf: float
    ids: np.ndarray
    tfs: np.ndarray
    lengths: np.ndarray
    keys: np.ndarray | None = None
    read: np.ndarray | None = None
    bound: float = 0.0  # no share of this term exceeds it


@dataclass
class Postings:
    """What ranking a query needs: the collection's mean length, the query's terms, and
    the connection that reads the blocks of common terms when they are needed."""

    avg_length: float
    terms: list[Term]
    nbytes: int  # the postings' bytes read
    conn: Any = None

    def whole(self, terms: list[Term]) -> None:
        """Read these terms' postings whole, where they are not yet."""
        partial = {t.id: t for t in terms if t.keys is not None}
        if not partial:
            return
        for term_id, ids, tfs, lengths in self._rows(WHOLE, (list(partial),)):
            term = partial[term_id]
            term.ids, term.tfs, term.lengths = ids, tfs, lengths
            term.keys = term.read = None

    def blocks(self, terms: list[Term], candidates: np.ndarray) -> None:
        """Read the blocks of these terms that may hold a posting of a candidate."""
        wanted: list[tuple[Term, np.ndarray]] = []
        whole = []
        for term in terms:
            if term.keys is None or term.read is None or not candidates.size:
                continue
            at = np.searchsorted(term.keys, candidates)
            at = np.unique(at[at < term.keys.size])
            at = at[~term.read[at]]
            if at.size * 2 > term.keys.size:  # most of its blocks: read it whole
                whole.append(term)
            elif at.size:
                term.read[at] = True
                wanted.append((term, term.keys[at]))
        self.whole(whole)
        for term, keys in wanted:
            rows = self._rows(BLOCKS, (term.id, keys.tolist()))
            if not rows:
                continue
            _, ids, tfs, lengths = rows[0]
            ids = np.concatenate([term.ids, ids])
            order = np.argsort(ids, kind="stable")
            term.ids = ids[order]
            term.tfs = np.concatenate([term.tfs, tfs])[order]
            term.lengths = np.concatenate([term.lengths, lengths])[order]

    def _rows(
        self, query: str, params: tuple[Any, ...]
    ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        with self.conn.cursor(binary=True) as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        found = []
        for term_id, packed in rows:
            self.nbytes += len(packed or b"")
            found.append((int(term_id), *_decoded(packed)))
        return found


def _decoded(packed: bytes | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A term's postings from its blocks' packed records: chunk ids, term frequencies
    and lengths, in chunk id order."""
    if not packed:
        return np.zeros(0, np.int64), np.zeros(0, np.int16), np.zeros(0, np.int32)
    if len(packed) % POSTING.itemsize:
        raise ValueError(
            f"BM25 postings of {len(packed)} bytes: not a run of {POSTING.itemsize}-byte"
            " records (id int8, tf int2, length int4), as migration 0012 packs them"
        )
    records = np.frombuffer(packed, dtype=POSTING)
    chunks = records["id"].astype(np.int64)
    if chunks.size > 1 and not (chunks[1:] > chunks[:-1]).all():
        order = np.argsort(chunks, kind="stable")
        records, chunks = records[order], chunks[order]
    return chunks, records["tf"].astype(np.int16), records["length"].astype(np.int32)


def fetch(
    conn: psycopg.Connection[Any], collection: str, text: str, whole_max_df: int | None = None
) -> Postings | None:
    """The query's postings, in one statement (the block keys alone of terms in more
    than ``whole_max_df`` chunks, by default ``WHOLE_MAX_DF``); None when the collection
    has no chunks."""
    whole = WHOLE_MAX_DF if whole_max_df is None else whole_max_df
    with conn.cursor(binary=True) as cur:
        cur.execute(POSTINGS, {"c": collection, "t": text, "whole": whole})
        rows = cur.fetchall()
    if not rows:
        return None
    postings = Postings(float(rows[0][1]), [], 0, conn)
    for _, _, term_id, df, idf, packed, keys in rows:
        if term_id is None:
            continue
        postings.nbytes += len(packed or b"") + len(keys or b"")
        term = Term(int(term_id), int(df), float(idf), *_decoded(packed))
        if keys is not None:
            term.keys = np.frombuffer(keys, dtype=">i8").astype(np.int64)
            term.read = np.zeros(term.keys.size, dtype=bool)
        if term.ids.size or term.keys is not None:
            postings.terms.append(term)
    return postings


def shares(
    idf: float, tfs: np.ndarray, lengths: np.ndarray, avg_length: float,
    k1: float = K1, b: float = B,
) -> np.ndarray:  # fmt: skip
    """``bm25_term`` (0006) of each posting: the same float64 operations in the same
    order, rounded to a multiple of 2^-32, half to even."""
    tf = tfs.astype(np.float64)
    length = lengths.astype(np.float64)
    okapi = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg_length))
    rounded: np.ndarray = np.rint(okapi * _SCALE) / _SCALE
    return rounded


def lookup(term: Term, candidates: np.ndarray, avg_length: float) -> np.ndarray:
    """The term's share of each candidate (ascending or not; 0 where it is absent)."""
    found = np.zeros(candidates.size)
    if not candidates.size or not term.ids.size:
        return found
    at = np.minimum(np.searchsorted(term.ids, candidates), term.ids.size - 1)
    hit = term.ids[at] == candidates
    where = at[hit]
    found[hit] = shares(term.idf, term.tfs[where], term.lengths[where], avg_length)
    return found


def best(ids: np.ndarray, scores: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` best, by score descending then chunk id ascending."""
    if ids.size > limit:
        kth = np.partition(scores, ids.size - limit)[ids.size - limit]
        keep = scores >= kth
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:limit]
    return ids[order], scores[order]


def _kth(scores: np.ndarray, limit: int) -> float:
    """The ``limit``-th best score (0 when there are fewer)."""
    if scores.size < limit:
        return 0.0
    return float(np.partition(scores, scores.size - limit)[scores.size - limit])


def _full(terms: list[Term], candidates: np.ndarray, avg_length: float) -> np.ndarray:
    total = np.zeros(candidates.size)
    for term in terms:
        total += lookup(term, candidates, avg_length)
    return total


def _union(terms: list[Term], avg_length: float) -> tuple[np.ndarray, np.ndarray]:
    """Every chunk holding one of ``terms``, ascending, with its score on them."""
    if len(terms) == 1:
        term = terms[0]
        return term.ids, shares(term.idf, term.tfs, term.lengths, avg_length)
    ids = np.concatenate([t.ids for t in terms])
    scores = np.concatenate([shares(t.idf, t.tfs, t.lengths, avg_length) for t in terms])
    if not ids.size:
        return ids, scores
    first = min(int(t.ids[0]) for t in terms if t.ids.size)  # each term's ids ascend
    span = max(int(t.ids[-1]) for t in terms if t.ids.size) - first + 1
    if span <= 8 * ids.size + DENSE_SPAN:  # sum by id over the span, no sort
        at = ids - first
        seen = np.zeros(span, dtype=bool)
        seen[at] = True
        held = np.flatnonzero(seen)
        total = np.bincount(at, weights=scores, minlength=span)
        return held + first, total[held]
    chunks, where = np.unique(ids, return_inverse=True)
    return chunks, np.bincount(where, weights=scores, minlength=chunks.size)


def _optional(terms: list[Term], floor: float) -> tuple[int, float]:
    """How many of the commonest terms have bounds summing below the floor, and the sum."""
    optional, bound = 0, 0.0
    for term in terms:
        if bound + term.bound >= floor:
            break
        bound += term.bound
        optional += 1
    return optional, bound


def rank(postings: Postings, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` best chunks and their scores, as ``bm25_search`` ranks them."""
    empty = np.zeros(0, dtype=np.int64), np.zeros(0)
    terms = sorted(postings.terms, key=lambda t: -t.df)  # commonest first
    if limit <= 0 or not terms:
        return empty
    avg = postings.avg_length
    for term in terms:
        if term.keys is None:  # the share of its strongest tf at its shortest length
            strongest = np.array([term.tfs.max()]), np.array([term.lengths.min()])
            term.bound = float(shares(term.idf, *strongest, avg)[0])
        else:  # BM25's own bound, and a rounding's worth (as bm25_search's)
            term.bound = term.idf * (K1 + 1) + 1 / _SCALE

    # 1. A first floor: the best chunks of the rarest terms, scored in full.
    floor = 0.0
    rare, seen = 0, 0
    for i in range(len(terms) - 1, -1, -1):
        rare += 1
        seen += terms[i].df
        if seen >= limit and (i == 0 or seen + terms[i - 1].df > 2000 + 4 * limit):
            break
    if rare < len(terms):
        postings.whole(terms[len(terms) - rare :])
        ids, partial = _union(terms[len(terms) - rare :], avg)
        if ids.size > 4 * limit:
            ids, partial = best(ids, partial, 4 * limit)
        others = terms[: len(terms) - rare]
        postings.blocks(others, ids)
        floor = _kth(partial + _full(others, ids, avg), limit)

    # 2. The optional terms: the commonest, whose bounds sum below the floor.
    optional, bound = _optional(terms, floor)
    held = [t for t in terms[optional:] if t.keys is None]
    if held and len(held) < len(terms) - optional:
        # Essential terms not read whole: raise the floor with the best chunks of those
        # that are, scored in full, before reading them (they may turn optional).
        ids, partial = best(*_union(held, avg), 4 * limit)
        others = [t for t in terms if t not in held]
        postings.blocks(others, ids)
        floor = max(floor, _kth(partial + _full(others, ids, avg), limit))
        optional, bound = _optional(terms, floor)

    # 3. Every chunk holding an essential term, with its score on those terms.
    postings.whole(terms[optional:])
    ids, partial = _union(terms[optional:], avg)
    if optional == 0:
        return best(ids, partial, limit)

    # 4. Raise the floor: the best partial scorers, scored in full.
    top, top_partial = best(ids, partial, 4 * limit)
    postings.blocks(terms[:optional], top)
    floor = max(floor, _kth(top_partial + _full(terms[:optional], top, avg), limit))

    # 5. The optional terms, rarest first, for the chunks that can still reach the floor.
    for i in range(optional - 1, -1, -1):
        keep = partial + bound >= floor - _SLACK
        ids, partial = ids[keep], partial[keep]
        if not ids.size:
            break
        bound -= terms[i].bound
        postings.blocks([terms[i]], ids)
        partial = partial + lookup(terms[i], ids, avg)
        floor = max(floor, _kth(partial, limit))
    return best(ids, partial, limit)


def rank_among(
    postings: Postings, candidates: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``limit`` best of ``candidates`` (chunk ids) that hold a query term, as
    ``bm25_search_among`` ranks them: each scored in full."""
    if limit <= 0 or not postings.terms or not candidates.size:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    candidates = np.unique(candidates)
    postings.blocks(postings.terms, candidates)
    scores = _full(postings.terms, candidates, postings.avg_length)
    held = np.zeros(candidates.size, dtype=bool)
    for term in postings.terms:
        if not term.ids.size:
            continue
        at = np.minimum(np.searchsorted(term.ids, candidates), term.ids.size - 1)
        held |= term.ids[at] == candidates
    return best(candidates[held], scores[held], limit)
