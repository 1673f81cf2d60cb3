"""What the world reads: the static site, written from the articles.

    build/          the site's two halves: `render_site` (pure) and the writer that switches builds
    outputs.py      every file a build writes, planned with the key of what it is made from
    build_cache.py  what one build remembers for the next (compiled_templates.py: its Jinja code)
    archive.py      article pages, the index, tag pages, sitemap, search, 404
    feeds.py        RSS 2.0, Atom 1.0 and JSON Feed 1.1 (the only module that imports feedgen)
    websub.py       publish pings to each hub once a feed changed
"""
