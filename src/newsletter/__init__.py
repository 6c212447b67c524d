"""newsletter: compose issues from articles in git, build accessible email, send it."""

__version__ = "0.1.0"
