"""A document's attributes: what filters select on, merged from three sources.

1. S3 user metadata (``x-amz-meta-*``), set when the object is uploaded; ``collection``
   is routing, not an attribute.
2. Object tags, which can be changed in place without uploading the object again.
3. A sidecar ``<key>.metadata.json`` in the Bedrock Knowledge Bases shape,
   ``{"metadataAttributes": {"team": "search", "year": 2024}}``.

A later source wins a key: sidecar over tags over user metadata. The sidecar is the one
written on purpose for retrieval (typed values, any number of keys, edited without
touching the document); tags are edited in place, so they are newer than metadata that
only an upload can change. User metadata and tags are strings; sidecar values are
strings, numbers, booleans or lists of those (ISO dates are strings).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ragline.documents.sanitize import storable

SIDECAR_SUFFIX = ".metadata.json"
# A key a filter may name (and a sidecar may set): letters, digits and ``_ . : -``.
ATTRIBUTE_KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$"
MAX_SIDECAR_BYTES = 64 * 1024
MAX_ATTRIBUTES = 100
MAX_LIST_ITEMS = 100
MAX_STRING_CHARS = 2048

_KEY = re.compile(ATTRIBUTE_KEY_PATTERN)


class SidecarError(ValueError):
    """The sidecar cannot be read as metadata attributes; the message says why."""


def is_sidecar(key: str) -> bool:
    """Whether ``key`` is a metadata sidecar rather than a document."""
    return key.endswith(SIDECAR_SUFFIX) and len(key) > len(SIDECAR_SUFFIX)


def sidecar_key(document_key: str) -> str:
    return document_key + SIDECAR_SUFFIX


def document_key(sidecar: str) -> str:
    """The key of the document a sidecar describes."""
    return sidecar.removesuffix(SIDECAR_SUFFIX)


def parse_sidecar(data: bytes) -> dict[str, Any]:
    """The attributes of a sidecar's bytes; SidecarError names what is wrong."""
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"sidecar is {len(data)} bytes; the limit is {MAX_SIDECAR_BYTES}")
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SidecarError(f"sidecar is not JSON: {exc}") from exc
    if not storable(json.dumps(body, ensure_ascii=False)):
        raise SidecarError("sidecar holds a NUL or a lone surrogate (\\ud800-\\udfff), not text")
    if not isinstance(body, dict) or set(body) != {"metadataAttributes"}:
        raise SidecarError('sidecar must be {"metadataAttributes": {...}} and nothing else')
    attributes = body["metadataAttributes"]
    if not isinstance(attributes, dict):
        raise SidecarError("metadataAttributes must be an object")
    if len(attributes) > MAX_ATTRIBUTES:
        raise SidecarError(
            f"metadataAttributes has {len(attributes)} keys; at most {MAX_ATTRIBUTES}"
        )
    for key, value in attributes.items():
        if not _KEY.fullmatch(key):
            raise SidecarError(
                f"metadataAttributes key {key!r} must be 1-128 letters, digits, '_', '.', ':'"
                " or '-', not starting with '.', ':' or '-'"
            )
        _check_value(f"metadataAttributes.{key}", value)
    return attributes


def merge_attributes(
    user: Mapping[str, str], tags: Mapping[str, str], sidecar: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The document's attributes: sidecar over tags over user metadata (``collection``
    in user metadata routes the object and is not an attribute). Keys a filter could
    never name are left out."""
    merged: dict[str, Any] = {}
    routed = {k: v for k, v in user.items() if k != "collection"}
    for source in (routed, tags, sidecar or {}):
        merged.update((k, v) for k, v in source.items() if _KEY.fullmatch(k))
    return merged


def _check_value(where: str, value: Any, *, in_list: bool = False) -> None:
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS or "\x00" in value:
            raise SidecarError(
                f"{where}: strings are at most {MAX_STRING_CHARS} characters, no NUL"
            )
        return
    if isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SidecarError(f"{where}: numbers must be finite")
        return
    if isinstance(value, list) and not in_list:
        if len(value) > MAX_LIST_ITEMS:
            raise SidecarError(f"{where}: lists hold at most {MAX_LIST_ITEMS} values")
        for index, item in enumerate(value):
            _check_value(f"{where}[{index}]", item, in_list=True)
        return
    kind = "a list of lists" if in_list and isinstance(value, list) else type(value).__name__
    if value is None:
        kind = "null"
    raise SidecarError(
        f"{where}: values are strings, numbers, booleans or lists of those, not {kind}"
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
