"""The mail provider the actions send through, as the faces hold it.

A face makes the provider once from the config (`make_provider`, which imports only the
module of the provider configured) and hands a factory for it to the actions that send
(`Provider` is the interface they take), so that a test or the demo can hand in another.
"""

from __future__ import annotations

from publisher.delivery.base import Provider, make_provider

__all__ = ["Provider", "make_provider"]
