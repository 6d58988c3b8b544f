"""Collect: fetch reviews from a paginated JSON API or crawl web pages, politely, into a SQL
store (SQLite by default, any SQLAlchemy URL), incrementally and resumably.

- :mod:`.config`: the ``collect:`` recipe section.
- :mod:`.store`: tables, idempotent upserts, the cursor/frontier committed with the rows.
- :mod:`.http`: one polite HTTP client (User-Agent, per-host delay, retries, Retry-After).
- :mod:`.api`: a pass over a paginated API; :mod:`.crawl`: a crawl pass.
- :mod:`.runner`: one pass over every source, and ``--every`` periodic passes.
- :mod:`.demo_shop`: a local shop serving the built-in reviews to try it offline.
"""
