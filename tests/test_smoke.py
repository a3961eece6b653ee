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
