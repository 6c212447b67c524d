"""Pre-send checks on a built issue: each rule has an id, a severity and a place."""
