"""The audience: who is on the list, and who a send goes to.

In pipeline order:

    addresses     email address checks, mailboxes as people type them, and the keys and
                  hashes addresses are stored by
    segments      a small language of tags ("news and not staff") turned into WHERE clauses
    subscribers   the list: add, remove, read and count it, and `audience_where`, the one
                  definition of a send's audience (active, of the segment if one is given)
    erasure       deleting a subscriber's data for good, keeping a one-way hash
    csvrows       reading a CSV into checked rows, and the report of what was wrong
    importing     CSV import: streamed, checked row by row, in one transaction
    exporting     CSV export that import reads back and a spreadsheet opens safely
"""
