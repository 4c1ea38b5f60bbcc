"""pgcti: the thin Python edge of a PostgreSQL-centric CTI.

The business logic lives in the database (see db/migrations); this package only
moves bytes: PBX frames in, raw rows out, and tools to run and watch it.
"""

__version__ = "0.1.0"
