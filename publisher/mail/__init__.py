"""What readers receive: one issue rendered once, then a splice per recipient.

    newsletter.py    which articles go out, and their rendering (Jinja + premailer, once)
    mime.py          the rendered issue as pre-encoded MIME bytes, spliced per recipient
    dkim_signing.py  DKIM signatures made with OpenSSL, cheap enough for every copy
    tokens.py        signed unsubscribe, manage and confirmation links, and their secret
    preflight.py     the checks before a send
"""
