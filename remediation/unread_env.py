"""``REMEDIATE_*`` environment variables that nothing reads.

pydantic-settings ignores a variable it has no field for, so ``REMEDIATE_PLATFROM=aws`` or a misspelt
``REMEDIATE_NEVER_BLOCK_CIDRS`` would leave the default in force in silence: no lever, or an office range that may be
blocked. ``remediate.toml`` refuses an unknown key; the environment cannot be refused the same way (a shell exports
what it likes, and old variables linger), so every command names such a variable on stderr, ``remediate check`` and
serve's banner show it, and a run built from its environment notes it in its timeline, each with the closest real
name.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Mapping
from typing import NamedTuple

from remediation.settings import Settings
from remediation.settings_vendors import flat_fields

PREFIX = "REMEDIATE_"
#: Read elsewhere than ``Settings``: the configuration file's path, and the test suite's own switches (tests/,
#: .ci/run), which CI exports to every process it starts.
READ_ELSEWHERE = frozenset({"REMEDIATE_CONFIG", "REMEDIATE_REQUIRE_SERVICES", "REMEDIATE_TESTS_WITHOUT_SIM",
                            "REMEDIATE_UPDATE_SCREENSHOTS", "REMEDIATE_TEST_PG_ADMIN_URL", "REMEDIATE_CHROMIUM"})
#: Approvers' TOTP secrets by the name ``remediate approvers enrol`` suggests (``REMEDIATE_TOTP_<NAME>``).
SECRET_FAMILY = "REMEDIATE_TOTP_"


class UnreadVariable(NamedTuple):
    name: str
    closest: str | None  # the setting's variable it most resembles, if any is close

    def describe(self) -> str:
        hint = f" (did you mean {self.closest}?)" if self.closest else ""
        return f"{self.name} is not a setting{hint}: ignored"


@functools.cache  # the settings' names are fixed by their classes; every command and run start asks
def setting_variables() -> frozenset[str]:
    """Every variable a setting is read from: its flat name after the prefix, and its other names."""
    names = {PREFIX + flat.upper() for flat in flat_fields(Settings)}
    for info in Settings.model_fields.values():
        choices = getattr(info.validation_alias, "choices", ())
        names.update(choice for choice in choices if isinstance(choice, str) and choice.startswith(PREFIX))
    return frozenset(names)


def unread_variables(settings: Settings, environ: Mapping[str, str] | None = None,
                     secret_variables: frozenset[str] | None = None) -> list[UnreadVariable]:
    """The ``REMEDIATE_*`` variables of ``environ`` (default: this process's) that no setting, secret reference or
    tool reads, sorted.

    ``secret_variables``: the variables secret references name (they may be called anything); default: those of the
    configuration file (:func:`file_secret_variables`). Those of ``settings``' enrolled approvers are added here."""
    environ = os.environ if environ is None else environ
    secret_variables = file_secret_variables() if secret_variables is None else secret_variables
    known = setting_variables()
    referenced = secret_variables | {f.totp_env for f in settings.approver_factors.values() if f.totp_env}
    unread = sorted(name for name in environ if name.startswith(PREFIX) and name not in known
                    and name not in READ_ELSEWHERE and name not in referenced and not name.startswith(SECRET_FAMILY))
    candidates = sorted(known)
    return [UnreadVariable(name, next(iter(difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)), None))
            for name in unread]


def file_secret_variables() -> frozenset[str]:
    """The variables the configuration file's secret references name (``{ env = "..." }``)."""
    from remediation import config_file

    path = config_file.config_path()
    if path is None:
        return frozenset()
    return frozenset(ref.env for ref in config_file.load(path, Settings).secrets if ref.env)
