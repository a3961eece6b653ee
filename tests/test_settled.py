"""Settled, Fulfilled and Rejected: what all_settled() gives per task.

docs/api.md: ``Settled`` has ``.status``, ``.value`` (``None`` when rejected) and
``.reason`` (``None`` when fulfilled), compares equal by those fields and has a
readable repr.  Beyond it: every instance is a ``Fulfilled`` or a ``Rejected``
(narrowed by ``isinstance`` and ``match``), ``unwrap()``, and a JSON form.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import Any

import pytest


async def _outcomes(ba: Any) -> dict[str, Any]:
    async def good() -> dict[str, int]:
        await asyncio.sleep(0)
        return {"n": 1}

    async def bad() -> None:
        await asyncio.sleep(0)
        raise ValueError("no such user")

    async def slow() -> None:
        await asyncio.sleep(10)

    return await ba.all_settled({"good": good, "bad": bad, "slow": slow}, timeout=0.05)


async def test_each_outcome_is_fulfilled_or_rejected(ba):
    """Both engines give Fulfilled and Rejected instances, which are Settled."""
    r = await _outcomes(ba)
    assert type(r["good"]) is ba.Fulfilled and type(r["bad"]) is ba.Rejected
    assert type(r["slow"]) is ba.Rejected and isinstance(r["slow"].reason, TimeoutError)
    assert all(isinstance(s, ba.Settled) for s in r.values())
    assert (r["good"].status, r["good"].value, r["good"].reason) == ("fulfilled", {"n": 1}, None)
    assert (r["bad"].status, r["bad"].value) == ("rejected", None)
    assert r["good"].ok and not r["bad"].ok


async def test_match_and_unwrap(ba):
    """match narrows by class; unwrap() gives the value or raises the reason itself."""
    r = await _outcomes(ba)
    seen = []
    for name, outcome in r.items():
        match outcome:
            case ba.Fulfilled(value):
                seen.append((name, "value", value))
            case ba.Rejected(reason):
                seen.append((name, "reason", type(reason).__name__))
    assert seen == [
        ("good", "value", {"n": 1}),
        ("bad", "reason", "ValueError"),
        ("slow", "reason", "TimeoutError"),
    ]
    assert r["good"].unwrap() == {"n": 1}
    with pytest.raises(ValueError) as info:
        r["bad"].unwrap()
    assert info.value is r["bad"].reason


def test_constructors_agree(ba):
    """Settled(status, ...), Settled.fulfilled/rejected and the classes make
    equal objects of the same class; bad arguments are refused."""
    error = KeyError("k")
    assert ba.Settled("fulfilled", 3) == ba.Settled.fulfilled(3) == ba.Fulfilled(3)
    assert type(ba.Settled("fulfilled", 3)) is ba.Fulfilled
    assert ba.Settled("rejected", reason=error) == ba.Rejected(error) == ba.Settled.rejected(error)
    assert ba.Fulfilled(3) != ba.Fulfilled(4) and ba.Fulfilled(None) != ba.Rejected(error)
    assert hash(ba.Fulfilled(3)) == hash(ba.Settled("fulfilled", 3))
    with pytest.raises(ValueError, match="status must be"):
        ba.Settled("done", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no reason"):
        ba.Settled("fulfilled", 1, error)
    with pytest.raises(TypeError, match="needs an exception"):
        ba.Rejected("not an exception")  # type: ignore[arg-type]
    with pytest.raises(AttributeError, match="immutable"):
        ba.Fulfilled(1).value = 2  # type: ignore[misc]


def test_repr_and_pickle(ba):
    assert repr(ba.Fulfilled([1])) == "Settled(status='fulfilled', value=[1])"
    assert repr(ba.Rejected(ValueError("x"))) == "Settled(status='rejected', reason=ValueError('x'))"
    for s in (ba.Fulfilled({"a": 1}), ba.Rejected(ValueError("x"))):
        back = pickle.loads(pickle.dumps(s))
        assert type(back) is type(s)
        assert (back.status, back.value, type(back.reason), str(back.reason)) == (
            s.status, s.value, type(s.reason), str(s.reason)
        )


async def test_json_form(ba):
    """to_dict() and dict(s) give the JSON form; json.dumps(..., default=dict)
    serialises a whole all_settled result."""
    r = await _outcomes(ba)
    assert r["good"].to_dict() == dict(r["good"]) == {"status": "fulfilled", "value": {"n": 1}}
    assert dict(r["bad"]) == {
        "status": "rejected",
        "reason": {"type": "ValueError", "message": "no such user"},
    }
    assert list(r["good"]) == ["status", "value"]
    text = json.dumps(r, default=dict)
    assert json.loads(text) == {name: s.to_dict() for name, s in r.items()}


async def test_fastapi_encodes_an_all_settled_result(ba):
    """FastAPI's jsonable_encoder (what an endpoint returning the result uses)
    gives the JSON form, where it failed with "'Settled' object is not iterable"."""
    encoders = pytest.importorskip("fastapi.encoders")
    r = await _outcomes(ba)
    encoded = encoders.jsonable_encoder(r)
    assert encoded["good"] == {"status": "fulfilled", "value": {"n": 1}}
    assert encoded["bad"] == {
        "status": "rejected",
        "reason": {"type": "ValueError", "message": "no such user"},
    }
    assert encoded["slow"]["reason"]["type"] == "TimeoutError"
