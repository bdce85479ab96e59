"""Databases on the embedded PostgreSQL server the tests share."""

from __future__ import annotations

import re
import uuid

import psycopg


def create_database(postgres_server: str, label: str) -> str:
    """A fresh, empty database on the server, named after ``label``; its URL."""
    name = "t_" + re.sub(r"\W", "_", label)[:40] + "_" + uuid.uuid4().hex[:6]
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/postgres(\?|$)", f"/{name}\\1", postgres_server, count=1)
