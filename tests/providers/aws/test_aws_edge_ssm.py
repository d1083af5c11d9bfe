"""SSM-backed edge levers: the parameter layout an edge reader relies on, a concurrent writer that got there first,
values that are not ours, and an allowlist that is not managed yet (no undo could be known, so no change)."""

from __future__ import annotations

import pytest

from remediation.providers.aws.edge import SsmEdge, SsmUploadPolicy
from remediation.providers.aws.params import SsmParameters
from remediation.providers.aws.session import AwsConfig, AwsSession
from remediation.providers.platform import PlatformError
from remediation.providers.security import UploadAllowlist
from tests.contracts import awskit
from tests.helpers.moto_server import REGION, MotoServer
from tests.providers.aws.stubkit import offline_session, stubbed


def params_on(moto: MotoServer) -> SsmParameters:
    return SsmParameters(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)), awskit.PREFIX)


async def test_the_layout_under_the_prefix_is_one_parameter_per_prefix_and_per_flag(moto: MotoServer) -> None:
    edge = SsmEdge(params_on(moto))
    await edge.set_maintenance("/api/uploads", True)
    await edge.set_flag("checkout-v2", False)
    ssm = moto.client("ssm")
    found = {p["Name"]: p["Value"] for p in
             ssm.get_parameters_by_path(Path=awskit.PREFIX, Recursive=True)["Parameters"]}
    (maintenance,) = [name for name in found if "/maintenance/" in name]
    assert maintenance.startswith(f"{awskit.PREFIX}/maintenance/api-uploads-") and found[maintenance] == "/api/uploads"
    assert found[f"{awskit.PREFIX}/flags/checkout-v2"] == "false"


async def test_a_maintenance_switch_another_writer_made_first_is_no_change() -> None:
    session = offline_session()
    with stubbed(session, "ssm") as stub:
        stub.add_client_error("get_parameter", service_error_code="ParameterNotFound", http_status_code=400)
        stub.add_client_error("put_parameter", service_error_code="ParameterAlreadyExists", http_status_code=400)
        assert await SsmEdge(SsmParameters(session, awskit.PREFIX)).set_maintenance("/api", True) is False


async def test_a_flag_parameter_that_is_not_true_or_false_is_an_error(moto: MotoServer) -> None:
    moto.client("ssm").put_parameter(Name=f"{awskit.PREFIX}/flags/checkout-v2", Value="maybe", Type="String")
    edge = SsmEdge(params_on(moto))
    with pytest.raises(PlatformError, match="holds 'maybe', not true/false"):
        await edge.set_flag("checkout-v2", True)
    with pytest.raises(PlatformError, match="SSM name part"):
        await edge.set_flag("checkout v2", True)


async def test_an_unmanaged_allowlist_is_refused_for_reading_and_for_changing(moto: MotoServer) -> None:
    policy = SsmUploadPolicy(params_on(moto))
    with pytest.raises(PlatformError, match="not managed at the edge yet"):
        await policy.allowlist()
    with pytest.raises(PlatformError, match="not managed at the edge yet"):
        await policy.set_allowlist(UploadAllowlist(extensions=(".png",), mime_types=("image/png",)))
    assert awskit.ssm_value(moto, f"{awskit.PREFIX}/uploads/allowlist") is None


def test_a_prefix_must_name_a_path() -> None:
    with pytest.raises(PlatformError):
        SsmParameters(offline_session(), "/")
