"""Read back from the platform whether a plan is in effect, when the lever's own answer was lost.

One read per plan kind, through the capability's read methods (the same Protocols the lever implements), and one
pure judgement per kind that turns what was read into a :class:`ReadBack`:

* ``applied=True``: the platform shows the plan's effect (maintenance on, the target release current, ...);
* ``applied=False``: it shows the plan's effect absent;
* ``applied=None``: it cannot tell: the read failed, the plan is half in effect (two of three prefixes), or the
  plan leaves nothing to read (a restart, a signature reload). The gate keeps such an action ``unknown``.

``evidence`` is the sentence the ledger keeps for a person: what was read, not what was concluded.
:func:`read_back` never raises and is bounded in time: it runs when something has already gone wrong.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from remediation.levers import capability_of
from remediation.models import (
    BlockActor,
    CreateIndexPlan,
    DisableMaintenance,
    DrainInstance,
    EnableMaintenance,
    PauseJobs,
    Plan,
    ReloadSignatures,
    RestartInstance,
    RestoreInstance,
    ResumeJobs,
    Rollback,
    ScaleDown,
    ScaleUp,
    SetAuthSetting,
    SetFeatureFlag,
    SetUploadAllowlist,
    TerminateBackend,
    UnblockActor,
)
from remediation.outcomes import ReadBack
from remediation.providers.dbqueries import Presence
from remediation.providers.platform import Instance, Release
from remediation.providers.security import Block, UploadAllowlist
from remediation.runtime import Providers

#: What a value the identity provider keeps secret reads as: it cannot be compared with what we wrote.
REDACTION_MARKS = ("[redacted]", "***")
#: The balancer states of a target taken out of rotation (ELBv2 reads "unused", or "unavailable" when the target
#: group is not attached; a target deregistered long ago is not listed at all).
OUT_OF_ROTATION = ("unused", "unavailable")


async def read_back(plan: Plan, providers: Providers, *, timeout_s: float) -> ReadBack:
    """Whether ``plan`` is in effect now, read from the platform within ``timeout_s``; never raises."""
    capability = capability_of(plan)
    lever = getattr(providers, capability, None) if capability else None
    if lever is None:
        return ReadBack(None, f"no {capability or plan.kind} capability to read {plan.kind} back from")
    try:
        return await asyncio.wait_for(_read(plan, lever), timeout_s)
    except TimeoutError:
        return ReadBack(None, f"the {capability} read-back did not answer within {timeout_s:g}s")
    except Exception as exc:  # any failure is "cannot tell", and says why
        return ReadBack(None, f"the {capability} read-back failed: {type(exc).__name__}: {exc}"[:400])


async def _read(plan: Plan, lever: Any) -> ReadBack:
    """The one read of what ``plan`` changes, judged. ``lever`` is the capability ``capability_of(plan)`` names."""
    match plan:
        case EnableMaintenance(path_prefixes=prefixes) | DisableMaintenance(path_prefixes=prefixes):
            return judge_maintenance(prefixes, isinstance(plan, EnableMaintenance), await lever.maintenance_prefixes())
        case Rollback(to_release=release):
            return judge_release(release, await lever.releases())
        case SetFeatureFlag(flag=flag, enabled=enabled):
            return judge_flag(flag, enabled, await lever.flag(flag))
        case ScaleUp(to_replicas=replicas) | ScaleDown(to_replicas=replicas):
            return judge_replicas(plan.service, replicas, await lever.replicas(plan.service))
        case PauseJobs(previous=previous):
            return judge_workers(dict.fromkeys(previous, 0), _workers(await lever.jobs(plan.service)))
        case ResumeJobs(workers=workers):
            return judge_workers(workers, _workers(await lever.jobs(plan.service)))
        case TerminateBackend(pid=pid):
            return judge_backend_gone(pid, await lever.backend_present(pid))
        case CreateIndexPlan():
            index = plan.index()
            return judge_index(index.schema_name, index.name, await lever.index_present(index.schema_name, index.name))
        case BlockActor(actor_kind=kind, value=value) | UnblockActor(actor_kind=kind, value=value):
            # AWS's blocks() also carries out due expiries: a read-back must change nothing, so prefer the listing.
            listing = getattr(lever, "listing", None) or lever.blocks
            return judge_block(kind, value, isinstance(plan, BlockActor), await listing())
        case SetUploadAllowlist(extensions=extensions, mime_types=mime_types):
            return judge_allowlist(UploadAllowlist(extensions=extensions, mime_types=mime_types),
                                   await lever.allowlist())
        case ReloadSignatures():
            return judge_reload(await lever.version())
        case SetAuthSetting(setting=setting, value=value):
            return judge_setting(setting, value, await _setting(lever, setting))
        case DrainInstance(instance_id=instance):
            return judge_drained(instance, await lever.instances(plan.service))
        case RestoreInstance(instance_id=instance):
            return judge_restored(instance, await lever.instances(plan.service))
        case RestartInstance(instance_id=instance):
            return judge_restarted(instance, await lever.instances(plan.service))
    return ReadBack(None, f"no read-back is known for {plan.kind}")


# -- reads that need more than one call ----------------------------------------------------------------------------

def _workers(jobs: Sequence[Any]) -> dict[str, int]:
    return {job.name: job.workers for job in jobs}


_USER_ROLE_PREFIX, _USER_ROLE_SUFFIX = "user:", ":role"


async def _setting(identity: Any, setting: str) -> object:
    """The setting's value as the identity provider holds it now (``_ABSENT`` when it does not show it)."""
    if setting.startswith(_USER_ROLE_PREFIX) and setting.endswith(_USER_ROLE_SUFFIX):
        user = setting[len(_USER_ROLE_PREFIX):-len(_USER_ROLE_SUFFIX)]
        roles = await identity.user_roles([user])
        return roles.get(user) or ""  # no role reads as "": set_setting(..., "") removes it
    check = await identity.check()
    if not check.available:
        raise RuntimeError(f"the identity provider's configuration is unreadable: {check.reason}")
    return check.settings.get(setting, _ABSENT)


class _Absent:
    def __repr__(self) -> str:
        return "(not shown)"


_ABSENT = _Absent()


# -- pure judgements: what was read -> applied or not, with the evidence ------------------------------------------

def _all_or_none(done: Sequence[str], not_done: Sequence[str], evidence: str) -> ReadBack:
    """Applied when every part is in effect, not applied when none is, cannot tell when some are."""
    if not not_done:
        return ReadBack(True, evidence)
    if not done:
        return ReadBack(False, evidence)
    return ReadBack(None, f"partly in effect: {evidence}")


def judge_maintenance(prefixes: Sequence[str], enable: bool, current: Sequence[str]) -> ReadBack:
    on = set(current)
    done = [p for p in prefixes if (p in on) is enable]
    not_done = [p for p in prefixes if (p in on) is not enable]
    listed = ", ".join(current) or "none"
    return _all_or_none(done, not_done, f"prefixes under maintenance now: {listed}")


def judge_release(target: str, releases: Sequence[Release]) -> ReadBack:
    current = [r for r in releases if r.state == "current"]
    if len(current) != 1:
        return ReadBack(None, f"{len(current)} releases are current: the deploys cannot tell")
    (now,) = current
    return ReadBack(now.id == target, f"current release now: {now.version} ({now.id})")


def judge_flag(flag: str, enabled: bool, value: bool | None) -> ReadBack:
    if value is None:  # the write would have given it one
        return ReadBack(False, f"flag {flag} has no value at the edge")
    return ReadBack(value is enabled, f"flag {flag} is {'on' if value else 'off'} now")


def judge_replicas(service: str, wanted: int, now: int) -> ReadBack:
    return ReadBack(now == wanted, f"{service} runs {now} replicas now")


def judge_workers(wanted: Mapping[str, int], current: Mapping[str, int]) -> ReadBack:
    missing = sorted(set(wanted) - set(current))
    if missing:
        return ReadBack(None, f"job pools not listed by the platform: {', '.join(missing)}")
    done = [name for name, count in wanted.items() if current[name] == count]
    not_done = [name for name, count in wanted.items() if current[name] != count]
    shown = ", ".join(f"{name}={current[name]}" for name in sorted(wanted))
    return _all_or_none(done, not_done, f"workers now: {shown}")


def judge_backend_gone(pid: int, presence: Presence) -> ReadBack:
    if not presence.available:
        return ReadBack(None, f"backend {pid} could not be looked up: {presence.reason}")
    if presence.present:
        return ReadBack(False, f"backend {pid} still exists ({presence.detail or 'state unknown'})")
    return ReadBack(True, f"backend {pid} no longer exists")


def judge_index(schema_name: str, name: str, presence: Presence) -> ReadBack:
    qualified = f"{schema_name}.{name}"
    if not presence.available:
        return ReadBack(None, f"index {qualified} could not be looked up: {presence.reason}")
    if not presence.present:
        return ReadBack(False, f"index {qualified} does not exist")
    if presence.valid is False:
        return ReadBack(False, f"index {qualified} exists but is INVALID (the build did not finish): drop it with "
                               "DROP INDEX CONCURRENTLY before trying again")
    return ReadBack(True, f"index {qualified} exists and is valid")


def _same_actor(kind: str, value: str, block: Block) -> bool:
    if block.kind != kind:
        return False
    if kind == "ip":  # a WAF lists 203.0.113.7 as 203.0.113.7/32
        try:
            return ipaddress.ip_network(block.value, strict=False) == ipaddress.ip_network(value, strict=False)
        except ValueError:
            pass
    return block.value == value


def judge_block(kind: str, value: str, block: bool, listed: Sequence[Block]) -> ReadBack:
    found = [b for b in listed if _same_actor(kind, value, b)]
    if found:
        expiry = found[0].expires_at
        evidence = f"{kind} {value} is blocked" + (f" until {expiry:%Y-%m-%d %H:%M:%S}Z" if expiry else "")
    else:
        evidence = f"{kind} {value} is not on the block list"
    return ReadBack(bool(found) is block, evidence)


def judge_allowlist(wanted: UploadAllowlist, current: UploadAllowlist) -> ReadBack:
    # The edge keeps each list deduplicated and may keep its own order: compare what is accepted, not the spelling.
    same = set(current.extensions) == set(wanted.extensions) and set(current.mime_types) == set(wanted.mime_types)
    shown = f"{','.join(current.extensions) or '(none)'} / {','.join(current.mime_types) or '(none)'}"
    return ReadBack(same, f"uploads accept now: {shown}")


def judge_reload(version: str | None) -> ReadBack:
    # A reload changes nothing a read can tell from before (the version only moves when the signatures did).
    return ReadBack(None, f"a reload leaves nothing to read back; the daemon reports {version or 'no version'}")


def judge_setting(setting: str, wanted: str, current: object) -> ReadBack:
    if current is _ABSENT:
        return ReadBack(None, f"the identity provider does not show {setting}")
    shown = ",".join(str(v) for v in current) if isinstance(current, list | tuple) else str(current)
    if any(mark in shown for mark in REDACTION_MARKS):
        return ReadBack(None, f"{setting} is a secret the identity provider shows redacted")
    return ReadBack(shown == wanted, f"{setting} is {shown!r} now")


def _target(instance: str, instances: Sequence[Instance]) -> Instance | None:
    return next((i for i in instances if i.id == instance), None)


def _described(instance: Instance) -> str:
    return f"{instance.id} is {instance.state}" + (f" ({instance.detail})" if instance.detail else "")


def judge_drained(instance: str, instances: Sequence[Instance]) -> ReadBack:
    seen = _target(instance, instances)
    if seen is None:
        return ReadBack(True, f"{instance} is not registered with the load balancer")
    if seen.state in OUT_OF_ROTATION:
        return ReadBack(True, _described(seen))
    if seen.state == "draining":  # out of rotation, but still finishing requests: restarting it now would cut them
        return ReadBack(None, f"{_described(seen)}: deregistered, still finishing requests")
    return ReadBack(False, _described(seen))


def judge_restored(instance: str, instances: Sequence[Instance]) -> ReadBack:
    seen = _target(instance, instances)
    if seen is None:
        return ReadBack(False, f"{instance} is not registered with the load balancer")
    if seen.state == "healthy":
        return ReadBack(True, _described(seen))
    if seen.state in ("initial", "unhealthy"):  # registered, its health checks have not passed (yet)
        return ReadBack(None, f"{_described(seen)}: registered, not healthy yet")
    return ReadBack(False, _described(seen))


def judge_restarted(instance: str, instances: Sequence[Instance]) -> ReadBack:
    seen = _target(instance, instances)
    now = _described(seen) if seen is not None else f"{instance} is not listed"
    return ReadBack(None, f"a restart leaves nothing to read back for certain; {now}")
