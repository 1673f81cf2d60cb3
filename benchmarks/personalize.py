"""Per-recipient cost: splicing into pre-encoded MIME against rendering per recipient.

    .venv/bin/python benchmarks/personalize.py [--recipients 5000] [--naive 60] [--dkim]

Renders the sample publication's longest public article once (or a generated
article of about the same size when content/ has none), then measures, per recipient:

- splice:     MessageTemplate.message_bytes (what every send does per recipient);
- splice+url: the same plus signing the recipient's unsubscribe and manage links;
- naive:      the whole render per recipient (Jinja, premailer, the text part) with the
              reader's values, then email.message.EmailMessage + as_bytes.

Prints the median of each and the ratio naive / splice. The target is a splice median
of at most 0.1 ms. `--dkim` also times signing each message with a fresh 2048-bit key
(RSA signing dominates then; it is optional and off by default in the sample).
"""

from __future__ import annotations

import argparse
import email.policy
import email.utils
import html as html_lib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from publisher import content
from publisher.config import Config, load_config
from publisher.mail import newsletter, tokens
from publisher.mail.dkim_signing import DkimKey, DkimSigner, load_key
from publisher.models import Article

ROOT = Path(__file__).resolve().parent.parent

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SECRET = "benchmark-secret-0123456789abcdef"


def sample_article(config: Config) -> Article:
    articles = [a for a in content.load_articles(config) if a.is_public(NOW)]
    if articles:
        return max(articles, key=lambda a: len(a.html))
    paragraph = "<p>" + "A sentence about rest, sleep and recovery. " * 12 + "</p>\n"
    body = "".join(f"<h2>Section {n}</h2>\n{paragraph * 3}" for n in range(1, 7))
    return Article(
        slug="generated",
        title="A generated article",
        date=NOW,
        html=body + "<h2>References</h2><ol><li>Ref.</li></ol>",
        id="tag:example.org,2026-11-01:/generated",
        url=f"{config.site_url}/generated/",
        summary="Generated for the benchmark.",
    )


def recipient(config: Config, n: int, *, sign: bool) -> newsletter.Recipient:
    # Signed as a send signs a copy's links: a 32-digit link key and a 24-digit message key.
    url, manage = (
        tokens.reader_urls(config.public_url, SECRET, f"{n:032x}", f"{n:024x}")
        if sign
        else (f"{config.public_url}/unsubscribe/MTIz.Zm9vYmFyYmF6cXV4cXV1eHh5eno{n}", "")
    )
    return newsletter.Recipient(
        delivery_id=n,
        email=f"reader{n}@example.org",
        name=f"Reader Number {n}",
        unsubscribe_url=url,
        message_id=newsletter.message_id_for(f"i1.d{n}", "example.org"),
        manage_url=manage,
    )


def naive_message(config: Config, article: Article, reader: newsletter.Recipient) -> bytes:
    """What a per-recipient pipeline does: render, inline, build and serialise a message."""
    issue = newsletter.issue_for_article(config, article)
    rendered = newsletter.render_issue(config, issue, NOW)
    html, text = rendered.html, rendered.text
    for tokens_of, escape in ((newsletter.HTML_PLACEHOLDERS, True), (newsletter.TEXT_PLACEHOLDERS, False)):
        values = {"name": reader.name, "email": reader.email, "unsubscribe_url": reader.unsubscribe_url,
                  "manage_url": reader.manage_url or reader.unsubscribe_url}
        for key, token in tokens_of.as_dict().items():
            value = values[key]
            if escape:
                html = html.replace(token, html_lib.escape(value))
            else:
                text = text.replace(token, value)
    message = EmailMessage()
    message["From"] = str(config["newsletter.from"])
    message["To"] = Address(display_name=reader.name, addr_spec=reader.email)
    message["Subject"] = rendered.subject
    message["Date"] = email.utils.format_datetime(NOW)
    message["Message-ID"] = reader.message_id
    message["List-Unsubscribe"] = f"<{reader.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message.as_bytes(policy=email.policy.SMTP)


def median_ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6


def time_each(count: int, work: Callable[[int], object]) -> list[int]:
    samples = []
    for n in range(count):
        start = time.perf_counter_ns()
        work(n)
        samples.append(time.perf_counter_ns() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=5000, help="recipients timed for the splice")
    parser.add_argument("--naive", type=int, default=60, help="recipients timed the naive way")
    parser.add_argument("--dkim", action="store_true", help="also time DKIM signing per message")
    args = parser.parse_args()

    config = load_config(ROOT / "config.toml", env={})
    article = sample_article(config)
    start = time.perf_counter()
    rendered = newsletter.render_issue(config, newsletter.issue_for_article(config, article), NOW)
    template = newsletter.MessageTemplate.from_rendered(config, rendered)
    once_ms = (time.perf_counter() - start) * 1000
    size = len(template.message_bytes(recipient(config, 0, sign=False), NOW))
    print(f"article: {article.slug} ({len(rendered.html.encode()):,} bytes of HTML, "
          f"message {size:,} bytes); render + encode once: {once_ms:.1f} ms")

    readers = [recipient(config, n, sign=False) for n in range(args.recipients)]
    time_each(200, lambda n: template.message_bytes(readers[n], NOW))  # warm up
    splice = median_ms(time_each(args.recipients, lambda n: template.message_bytes(readers[n], NOW)))
    signed = median_ms(time_each(
        args.recipients,
        lambda n: template.message_bytes(recipient(config, n, sign=True), NOW),
    ))
    naive = median_ms(time_each(args.naive, lambda n: naive_message(config, article, readers[n])))

    print(f"splice (message_bytes) median:          {splice:.4f} ms per recipient  "
          f"(target <= 0.1 ms: {'met' if splice <= 0.1 else 'MISSED'})")
    print(f"splice + both links signed median:     {signed:.4f} ms per recipient")
    print(f"naive (Jinja + premailer + EmailMessage): {naive:.2f} ms per recipient")
    print(f"ratio naive / splice:                   {naive / splice:,.0f}x")

    if args.dkim:
        with tempfile.TemporaryDirectory() as folder:
            key = Path(folder) / "dkim.pem"
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            signer = DkimSigner("example.org", (DkimKey("bench", load_key(key.read_bytes(), str(key))),))
        dkim_template = newsletter.MessageTemplate.from_rendered(config, rendered, dkim=signer)
        count = min(args.recipients, 500)
        dkim_ms = median_ms(time_each(count, lambda n: dkim_template.message_bytes(readers[n], NOW)))
        print(f"splice + DKIM (rsa-sha256, 2048) median: {dkim_ms:.3f} ms per recipient")


if __name__ == "__main__":
    main()
