"""The public side: `serve` (subscriber pages, one-click unsubscribe, provider webhooks),
the static archive of sent issues with its feed, and the editor's local preview."""
