"""The reference strategy: a small FIX market maker that the collection deploys.

See ``docs/refapp.md``. Modules: ``config`` (refapp.yml), ``quoting`` (pure quote
logic), ``orders`` (working orders, fills, positions), ``store*`` and
``migrations`` (SQLite/PostgreSQL state), ``metrics``, ``http`` (endpoints),
``app`` (the running strategy) and ``cli``.
"""
