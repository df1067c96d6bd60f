"""Alembic environment: the project's own metadata and settings.

The URL comes from ``backend.config`` (``DATABASE_URL`` or the embedded
SQLite file) unless a caller passes a connection in ``config.attributes``
(the tests and ``backend.db.migrate`` do).  SQLite needs batch mode for
ALTERs; the project's column types render as ``backend.db.types.X``.
"""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import engine_from_config, pool

import backend.db.models as models
from backend.config import get_settings

config = context.config
if config.config_file_name and not config.attributes.get("skip_logging_config"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.metadata


def render_item(type_, obj, autogen_context):
    """Render the project's TypeDecorators by their import path."""
    if type_ == "type" and obj.__class__.__module__ == "backend.db.types":
        autogen_context.imports.add("import backend.db.types")
        return f"backend.db.types.{obj.__class__.__name__}()"
    return False


def compare_type(context_, inspected_column, metadata_column, inspected_type, metadata_type):
    """Compare TypeDecorators by what they become on this dialect."""
    from sqlalchemy.types import TypeDecorator

    if isinstance(metadata_type, TypeDecorator):
        return _differs(context_, inspected_type, metadata_type.load_dialect_impl(context_.dialect))
    return None


def _differs(context_, inspected_type, impl) -> bool:
    from sqlalchemy import Column

    return context_.impl.compare_type(Column("x", inspected_type), Column("x", impl))


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=compare_type,
        compare_server_default=False,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=get_settings().effective_database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_item=render_item,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    section = config.get_section(config.config_ini_section, {})
    section["sqlalchemy.url"] = get_settings().effective_database_url
    engine = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
