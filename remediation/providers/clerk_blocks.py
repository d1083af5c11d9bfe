"""User and session blocks through Clerk: how ``BlockActor(actor_kind="user" | "session")`` maps onto Clerk.

- **user** → ban (``POST /users/{id}/ban``: every session revoked, no new sign-in); the undo is unban. Clerk bans
  never expire, so the TTL is ours: before banning we write ``private_metadata.remediate_block = {"expires_at",
  "reason"}`` on the user (written first, so a ban of ours never exists without its expiry), and every call sweeps
  our bans whose expiry passed (unban, then clear the note; :meth:`ClerkBlocks.expire_due` does only that).
  :meth:`ClerkBlocks.blocks` lists banned users (``GET /users?banned=true``); a ban someone else made (no note of
  ours) is listed without expiry and never lifted by us, and blocking such a user leaves it as it is.
- **session** → revoke (``POST /sessions/{id}/revoke``): that one session is signed out at once. **It has no
  undo**: there is nothing to lift afterwards (the person may sign in again, which is what an unblock would
  have allowed anyway), so the returned block expires immediately, :meth:`ClerkBlocks.blocks` never lists
  sessions and ``unblock("session", ...)`` answers False. Revoking a session that is no longer active is a no-op.
- **ip** is not Clerk's: it belongs to the edge firewall (``vercel_firewall``); ``RoutedBlocks`` joins them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from remediation.providers.clerk import ClerkIdentity
from remediation.providers.platform import PlatformError
from remediation.providers.security import Block, BlockKind

NOTE_KEY = "remediate_block"


def _note(user: dict[str, Any]) -> tuple[datetime, str] | None:
    metadata = user.get("private_metadata")
    note = metadata.get(NOTE_KEY) if isinstance(metadata, dict) else None
    if not isinstance(note, dict) or not isinstance(note.get("expires_at"), str):
        return None
    try:
        expires = datetime.fromisoformat(note["expires_at"].replace("Z", "+00:00"))
    except ValueError:
        return None
    return expires, str(note.get("reason") or "")


class ClerkBlocks:
    """:class:`~remediation.providers.capabilities.ActorBlocks` for ``user`` (ban) and ``session`` (revoke) blocks."""

    def __init__(self, clerk: ClerkIdentity) -> None:
        self.clerk = clerk

    async def blocks(self) -> list[Block]:
        users = await self.clerk.banned_users()
        lifted = set(await self._expire(users))
        return [_block(u) for u in users if str(u.get("id")) not in lifted]

    async def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str) -> Block:
        now = self.clerk.clock.now()
        if kind == "session":
            await self.clerk.revoke_session(value)
            return Block(kind="session", value=value, expires_at=now, reason=reason)  # done at once, no undo
        if kind != "user":
            raise PlatformError(f"Clerk blocks users and sessions, not an {kind}; IP blocks are the edge firewall's")
        user = await self.clerk.user(value)
        if user.get("banned") is True and _note(user) is None:
            return _block(user)  # banned by someone else: leave their ban (and its permanence) alone
        expires = now + timedelta(seconds=ttl_s)
        reason = reason or (_note(user) or (expires, ""))[1]  # a repeat without a reason keeps the first one's
        await self.clerk.set_private_metadata(value, NOTE_KEY, {
            "expires_at": expires.isoformat().replace("+00:00", "Z"), "reason": reason})
        if user.get("banned") is not True:
            await self.clerk.ban_user(value)
        return Block(kind="user", value=value, expires_at=expires, reason=reason)

    async def unblock(self, kind: BlockKind, value: str) -> bool:
        if kind != "user":
            return False  # a revoked session has nothing to lift; IPs are not Clerk's
        user = await self.clerk.user(value)
        if _note(user) is None:
            return False  # not banned by us (or not banned at all)
        lifted = await self.clerk.unban_user(value)
        await self.clerk.set_private_metadata(value, NOTE_KEY, None)
        return lifted

    async def expire_due(self) -> list[str]:
        """Lift our bans whose expiry has passed; returns the user ids unbanned."""
        return await self._expire(await self.clerk.banned_users())

    async def _expire(self, users: list[dict[str, Any]]) -> list[str]:
        now = self.clerk.clock.now()
        lifted = []
        for user in users:
            note = _note(user)
            if note is not None and note[0] <= now:
                await self.clerk.unban_user(str(user["id"]))
                await self.clerk.set_private_metadata(str(user["id"]), NOTE_KEY, None)
                lifted.append(str(user["id"]))
        return lifted


def _block(user: dict[str, Any]) -> Block:
    note = _note(user)
    if note is None:
        return Block(kind="user", value=str(user.get("id")), expires_at=None, reason="banned outside remediation")
    return Block(kind="user", value=str(user.get("id")), expires_at=note[0], reason=note[1])
