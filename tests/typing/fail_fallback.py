# pyright: strict
"""Wrong uses of ba.fallback."""

from __future__ import annotations

import betterall as ba


async def recommendations() -> list[str]:
    return ["a"]


ba.fallback(recommendations, [], on=BaseException)  # error
ba.fallback(recommendations, [], timeout="soon")  # error
ba.fallback(recommendations, compute=lambda: [])  # error
x: list[str] = ba.fallback(recommendations, None)  # error
