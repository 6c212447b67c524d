"""The ledger's hot-path statements as plain SQL for each driver (see ledger.py).

Kept apart so that ledger.py reads as what happens to a row, not how each database
spells it.
"""

from __future__ import annotations

import sqlite3

CLAIM = {
    # One statement: the read never has to be upgraded to a write, and each row comes
    # back with whether its subscriber is still active, and under which name, as of now.
    "sqlite": """
UPDATE deliveries
   SET state = 'in_flight', attempt = attempt + 1, attempt_id = ?, claimed_at = NULL,
       updated_at = ?
 WHERE id IN (SELECT id FROM deliveries
               WHERE issue = ? AND state = 'pending' AND attempt < ?
               ORDER BY id LIMIT ?)
   AND state = 'pending'
RETURNING id, subscriber_id, email, attempt""",
    # PostgreSQL locks the rows first and skips those other senders hold (inside an IN
    # subquery it may run a LIMIT ... FOR UPDATE more than once).
    "postgresql": """
UPDATE deliveries
   SET state = 'in_flight', attempt = attempt + 1, attempt_id = %s, claimed_at = NULL,
       updated_at = %s
 WHERE id = ANY(%s) AND state = 'pending'
RETURNING id, subscriber_id, email, attempt""",
}
# Whether each claimed row's subscriber is still active, under which name and with which
# fields, as of now: one look-up by primary key a row.
# `{ids}` is storage.IN_LIST (the ids as one parameter).
SUBSCRIBERS = "SELECT id, status, name, fields FROM subscribers WHERE id {ids}"

UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)
RECORD = {
    "sqlite": """
UPDATE deliveries
   SET state = json_extract(j.value, '$[1]'),
       provider_message_id = json_extract(j.value, '$[2]'),
       error = json_extract(j.value, '$[3]'),
       sent_at = CASE WHEN json_extract(j.value, '$[1]') = 'sent' THEN ?1 END,
       updated_at = ?1
  FROM json_each(?2) AS j
 WHERE deliveries.id = json_extract(j.value, '$[0]')
   AND deliveries.attempt_id = ?3 AND deliveries.state = 'in_flight'""",
    "postgresql": """
UPDATE deliveries AS d
   SET state = u.state, provider_message_id = u.message_id, error = u.error,
       sent_at = CASE WHEN u.state = 'sent' THEN %s::timestamptz END, updated_at = %s
  FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS u(id, state, message_id, error)
 WHERE d.id = u.id AND d.attempt_id = %s AND d.state = 'in_flight'""",
}

# The rows a batch sent, as {"<id>": "<message id>"}: a third cheaper than RECORD's
# json_extract of each column of each row.
RECORD_SENT = """
UPDATE deliveries
   SET state = 'sent', provider_message_id = j.value, error = NULL, sent_at = ?1,
       updated_at = ?1
  FROM json_each(?2) AS j
 WHERE deliveries.id = CAST(j.key AS INTEGER)
   AND deliveries.attempt_id = ?3 AND deliveries.state = 'in_flight'"""
