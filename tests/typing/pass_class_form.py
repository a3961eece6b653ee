# pyright: strict
"""The class form (``ba.Graph``), written as a user writes it: both checkers
must accept every line, and every ``assert_type`` must hold."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar, assert_type

import betterall as ba


@dataclass
class User:
    id: int
    name: str


@dataclass
class Admin(User):
    rights: tuple[str, ...] = ()


@dataclass
class Profile:
    user_id: int
    bio: str


@dataclass
class Config:
    theme: str


T = TypeVar("T")


async def fetch_user(auth: str) -> User:
    await asyncio.sleep(0)
    return User(len(auth), "ada")


class Dashboard(ba.Graph):
    """Inputs: annotated class attributes, keyword-only, some with defaults."""

    auth: str
    retries: int = 3
    tags: list[str] = field(default_factory=list)

    def describe(self) -> str:  # an ordinary helper method
        return f"{self.auth}:{self.retries}"

    @ba.task
    async def user(self) -> User:
        assert_type(self.auth, str)
        assert_type(self.retries, int)
        assert_type(self.tags, list[str])
        assert_type(self._name, str)
        assert_type(self._signal, ba.Signal)
        assert_type(self.describe(), str)
        return await fetch_user(self.auth)

    @ba.task
    def config(self) -> Config:  # a synchronous task
        return Config("dark")

    @ba.task
    async def profile(self) -> Profile:
        user = await self.user  # a sibling, typed by its return annotation
        assert_type(user, User)
        config = await self.config  # a synchronous sibling is awaited too
        assert_type(config, Config)
        if self._signal.aborted:
            self._signal.raise_if_aborted()
        return Profile(user.id, f"{user.name} likes {config.theme}")

    @ba.task
    @ba.in_task  # runs in a real asyncio.Task; the type is unchanged
    async def audit(self) -> list[str]:
        task = asyncio.current_task()
        profile = await self.profile
        assert_type(profile, Profile)
        return [task.get_name() if task else "", profile.bio]


class Premium(Dashboard):
    """A subclass adds an input and a task, and overrides a task (with a
    narrower return type)."""

    level: int = 1

    @ba.task
    async def user(self) -> Admin:
        return Admin(2, "grace", ("all",))

    @ba.task
    async def badge(self) -> str:
        user = await self.user
        assert_type(user, Admin)
        profile = await self.profile  # inherited sibling
        assert_type(profile, Profile)
        return f"{user.rights}:{profile.bio}:{self.level}"


class Race(ba.Graph):
    """A flow: the first task to call self._end() decides the result."""

    delay: float = 0.01

    @ba.task
    async def fast(self) -> NoReturn:
        await asyncio.sleep(self.delay)
        self._end(("fast", self._name))

    @ba.task
    async def slow(self) -> None:
        await asyncio.sleep(1)
        if not self._signal.aborted:
            self._end("slow")

    @ba.task
    async def referee(self) -> str:
        await self.slow
        return "draw"


def pick(results: ba.Results[Dashboard], task: ba.Task[Dashboard, T]) -> T:
    """A helper typed with the public generic types."""
    return results[task]


def outcome(results: ba.SettledResults[Dashboard], task: ba.Task[Dashboard, T]) -> T | None:
    return results[task].value


def keep(trace: ba.Trace) -> None:
    assert_type(trace.tasks["user"].status, Literal["fulfilled", "rejected", "cancelled", "ended", "fallback"])


async def main() -> None:
    graph = Dashboard(auth="t")
    assert_type(graph.auth, str)
    assert_type(Dashboard.user, ba.Task[Dashboard, User])
    assert_type(Dashboard.config, ba.Task[Dashboard, Config])

    r = await graph.all()
    assert_type(r, ba.Results[Dashboard])
    assert_type(r[Dashboard.user], User)
    assert_type(r[Dashboard.config], Config)
    assert_type(r[Dashboard.profile], Profile)
    assert_type(r[Dashboard.audit], list[str])
    assert_type(r["user"], Any)  # by name: the same value, untyped
    assert_type(r.get(Dashboard.user), User | None)
    assert_type(r.get(Dashboard.user, 0), User | int)
    for name, value in r.items():  # still a dict of names to results
        assert_type(name, str)
        assert_type(value, Any)
    plain: dict[str, Any] = r
    print(sorted(plain))

    p = await Premium(auth="t", retries=1, tags=["vip"], level=2).all(timeout=5)
    assert_type(p, ba.Results[Premium])
    assert_type(p[Premium.badge], str)
    assert_type(p[Premium.user], Admin)
    assert_type(p[Premium.profile], Profile)  # inherited task, subclass key
    assert_type(p[Dashboard.profile], Profile)  # base task on subclass results
    assert_type(p[Dashboard.user], User)  # the base's declared type
    assert_type(pick(r, Dashboard.profile), Profile)
    assert_type(pick(p, Dashboard.profile), Profile)  # a subclass's results are a base's
    assert_type(pick(p, Premium.user), Admin)  # an override is a task of the base

    s = await Dashboard(auth="t").all_settled(debug=keep)
    assert_type(s, ba.SettledResults[Dashboard])
    assert_type(s[Dashboard.user], ba.Fulfilled[User] | ba.Rejected)
    assert_type(s[Dashboard.user].value, User | None)
    assert_type(s[Dashboard.config].ok, bool)
    assert_type(s[Dashboard.profile].reason, BaseException | None)
    assert_type(s["user"], ba.Fulfilled[Any] | ba.Rejected)
    sp = await Premium(auth="t").all_settled()
    assert_type(sp[Dashboard.config], ba.Fulfilled[Config] | ba.Rejected)
    assert_type(sp[Premium.badge], ba.Fulfilled[str] | ba.Rejected)
    assert_type(outcome(sp, Dashboard.config), Config | None)
    outcomes: dict[str, ba.Fulfilled[Any] | ba.Rejected] = sp
    read_only: Mapping[str, ba.Settled[Any]] = sp  # the base, through a read-only view
    print(outcomes, read_only)

    winner = await Race(delay=0.0).flow(debug=True)
    assert_type(winner, Any)
    await Race().flow(debug=lambda trace: print(trace.critical_path()))


def run() -> None:
    asyncio.run(main())
