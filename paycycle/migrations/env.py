"""Alembic environment: the URL comes from our settings (or the caller), never from alembic.ini."""

from __future__ import annotations

from alembic import context

from paycycle.store import Base, make_engine, normalize_url

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if url is None:  # plain `alembic` invocation: the project's settings decide
        from paycycle import config as paycycle_config

        url = paycycle_config.load().db_url
    return normalize_url(url)


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
