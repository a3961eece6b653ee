import asyncio


async def test_dashboard(ba):
    async def user(self):
        await asyncio.sleep(0.01)
        return {"id": 1}

    async def profile(self):
        u = await self.user
        return ("profile", u["id"])

    r = await ba.all({"user": user, "config": lambda: "cfg", "profile": profile})
    assert r == {"user": {"id": 1}, "config": "cfg", "profile": ("profile", 1)}
    assert list(r) == ["user", "config", "profile"]


def test_public_classes_live_in_betterall():
    """Tracebacks and reprs name betterall.CycleError, not betterall._errors.CycleError,
    and every public class pickles by that name."""
    import pickle
    import traceback

    import betterall

    for name in betterall.__all__:
        obj = getattr(betterall, name)
        if isinstance(obj, type):
            assert obj.__module__ == "betterall", name
            assert getattr(betterall, obj.__qualname__) is obj
    try:
        raise betterall.CycleError(["a", "b", "a"])
    except betterall.CycleError:
        text = traceback.format_exc()
    assert "betterall.CycleError: dependency cycle: a -> b -> a" in text
    assert "_errors" not in text.splitlines()[-1]
    error = pickle.loads(pickle.dumps(betterall.UnknownTaskError("x", "y")))
    assert (type(error), error.name, error.suggestion) == (betterall.UnknownTaskError, "x", "y")
    assert pickle.loads(pickle.dumps(betterall.Settled.fulfilled(3))) == betterall.Settled.fulfilled(3)
