"""Composing: from an issue's files to the finished email, before anyone is sent it.

In pipeline order:

    articles      read .md, .txt and .html article files into one Article model
                  (markup: the Markdown, HTML and plain-text conversions they use;
                  front_matter, dates and links: the checks of what articles say)
    issue         an issue folder: issue.toml and its articles, in order, checked
    sources       one hash of everything a build is made from
    render        the Jinja2 templates: HTML and plain text with per-recipient tokens
    inline        CSS into style attributes, once per issue
    personalize   fill one recipient's fields into the finished HTML and text
    message       headers and MIME around it: the message one recipient receives
    build         all of the above for `newsletter build`: the files under build/<issue>/
"""
