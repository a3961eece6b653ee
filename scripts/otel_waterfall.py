#!/usr/bin/env python
"""Draw the OpenTelemetry spans of one real request as a waterfall PNG.

    pip install -e '.[test]' matplotlib
    python scripts/otel_waterfall.py [docs/images/otel-waterfall.png]

Serves examples/fastapi_app.py with uvicorn behind OpenTelemetry's ASGI
middleware, with the fake upstream (examples/webdemo/upstream.py) on
loopback and ``betterall.otel.instrument()`` on, sends one request to
``/depends/betterall/account`` (its ``Depends`` tree run by GraphRoute), and
draws the spans the SDK's in-memory exporter got, as a tracing UI (Jaeger,
Tempo) shows them: one row per span, indented under its parent, the
``betterall.wait`` events shaded.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import httpx  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from webdemo.servers import serve_uvicorn  # noqa: E402
from webdemo.upstream import Upstream  # noqa: E402

import fastapi_app  # noqa: E402
from betterall import otel  # noqa: E402

PATH = "/depends/betterall/account"


async def collect() -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(tracer_provider=provider)
    try:
        async with Upstream() as upstream:
            app = OpenTelemetryMiddleware(fastapi_app.make_app(upstream.url), tracer_provider=provider)
            async with serve_uvicorn(app) as handle, httpx.AsyncClient(base_url=handle.url) as http:
                await http.get(PATH)  # warm-up, not drawn
                exporter.clear()
                response = await http.get(PATH)
                response.raise_for_status()
                await asyncio.sleep(0.1)  # the request span ends after the response
    finally:
        otel.uninstrument()
    return list(exporter.get_finished_spans())


def rows(spans: list[ReadableSpan]) -> list[tuple[int, ReadableSpan]]:
    """(depth, span) depth-first from the root, children by start time;
    the ASGI middleware's own send/receive spans left out."""
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        if span.name.endswith((" http send", " http receive")):
            continue
        children.setdefault(span.parent.span_id if span.parent else None, []).append(span)
    out: list[tuple[int, ReadableSpan]] = []

    def visit(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start_time or 0, s.name)):
            out.append((depth, span))
            assert span.context is not None
            visit(span.context.span_id, depth + 1)

    visit(None, 0)
    return out


def draw(spans: list[ReadableSpan], path: Path) -> None:
    ordered = rows(spans)
    t0 = min(span.start_time or 0 for _, span in ordered)

    def ms(ns: int | None) -> float:
        return ((ns or 0) - t0) / 1e6

    fig, ax = plt.subplots(figsize=(10, 0.42 * len(ordered) + 1.2), dpi=120)
    colors = {0: "#4c72b0", 1: "#55a868"}
    for i, (depth, span) in enumerate(ordered):
        start, end = ms(span.start_time), ms(span.end_time)
        attributes: Any = span.attributes or {}
        failed = span.status.status_code.name == "ERROR"
        color = "#c44e52" if failed else colors.get(depth, "#dd8452")
        ax.barh(i, end - start, left=start, height=0.6, color=color)
        for event in span.events:
            if event.name == "betterall.wait":
                w0 = ms(event.timestamp)
                ax.barh(i, float(event.attributes["betterall.wait.seconds"]) * 1e3,  # type: ignore[index]
                        left=w0, height=0.6, color="white", alpha=0.55, hatch="///", edgecolor=color)
        label = "  " * depth + span.name
        deps = attributes.get("betterall.task.deps")
        if deps:
            label += f"  (awaits {', '.join(deps)})"
        ax.text(-4, i, label, ha="right", va="center", fontsize=9, family="monospace")
        ax.text(end + 3, i, f"{end - start:.0f} ms", va="center", fontsize=8, color="#555555")
    ax.set_yticks([])
    ax.invert_yaxis()
    ax.set_xlabel("ms since the request started")
    ax.set_xlim(0, max(ms(span.end_time) for _, span in ordered) * 1.12)
    ax.set_title(f"GET {PATH}: OpenTelemetry spans (betterall.otel + the ASGI instrumentation)", fontsize=10)
    ax.spines[["left", "right", "top"]].set_visible(False)
    fig.text(0.99, 0.01, "hatched: waiting on a sibling (betterall.wait events)", ha="right", fontsize=8, color="#555555")
    fig.savefig(path, bbox_inches="tight")
    print(f"wrote {path} ({len(ordered)} spans)")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images" / "otel-waterfall.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    draw(asyncio.run(collect()), path)


if __name__ == "__main__":
    main()
