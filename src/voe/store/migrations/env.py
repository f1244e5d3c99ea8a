"""Alembic environment: voe runs migrations in-process on an open connection
(see ``voe.store.db.migrate``); the ``alembic`` command line works too, given
``-x url=...``."""

from alembic import context
from sqlalchemy import create_engine

from voe.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    connection = create_engine(url).connect()

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
