"""What moto 5.2.5 does not implement, said plainly, and how it surfaces through the adapters' error path (the
docs/reference/integrations.md §3.2): JSON clients get a ClientError "500", XML clients a ResponseParserError; both are
provider errors here. The adapters avoid these calls (rollback is update_service to a revision, not the
service-deployment API; scaling never needs an instance refresh), and the unit tests with recorded responses
cover what moto cannot show (draining, lost answers, ARNs, registration times)."""

from __future__ import annotations

import pytest

from remediation.providers.aws.capacity import AsgCapacity
from remediation.providers.aws.session import AwsConfig, AwsError, AwsSession
from remediation.providers.platform import PlatformError
from tests.helpers.moto_server import REGION, MotoServer


def session_on(moto: MotoServer) -> AwsSession:
    return AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url, max_attempts=1))


async def test_moto_lacks_the_ecs_service_deployment_api_and_that_is_a_provider_error(moto: MotoServer) -> None:
    with pytest.raises(AwsError) as raised:
        await session_on(moto).call("ecs", "list_service_deployments", cluster="kamkmserve", service="web")
    assert (raised.value.kind, raised.value.code) == ("provider", "500")


async def test_moto_lacks_instance_refresh_and_the_xml_parser_error_is_a_provider_error(moto: MotoServer) -> None:
    with pytest.raises(AwsError) as raised:
        await session_on(moto).call("autoscaling", "start_instance_refresh", AutoScalingGroupName="web")
    assert (raised.value.kind, raised.value.code) == ("provider", "ResponseParserError")


async def test_an_unknown_group_is_named_before_moto_could_crash_on_it(moto: MotoServer) -> None:
    """moto answers set_desired_capacity on an unknown group with a 500 (AWS: ValidationError); the adapter reads
    the group first and says it does not exist."""
    with pytest.raises(PlatformError, match="Auto Scaling group 'nope' not found"):
        await AsgCapacity(session_on(moto)).scale("nope", 2)
