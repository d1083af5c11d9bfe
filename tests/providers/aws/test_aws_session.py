"""The AWS session: nothing is built before the first call, every client uses adaptive retries, and every failure
becomes a PlatformError in one of three families (client, provider, transport) without a credential in it."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.parsers import ResponseParserError

from remediation import composition
from remediation.providers.aws import (
    AsgCapacity,
    AwsError,
    CloudWatchLogs,
    EcsCapacity,
    EcsDeploys,
    EcsJobs,
    ElbInstances,
    SsmEdge,
    SsmUploadPolicy,
    WafBlocks,
    aws_levers,
)
from remediation.providers.aws.session import AwsConfig, AwsSession, translate
from remediation.providers.platform import PlatformError
from remediation.settings import Settings

FULL = {"platform": "aws", "aws_region": "eu-west-1", "aws_endpoint_url": "http://127.0.0.1:9",
        "aws_job_services": "report-export, email-digest", "aws_waf_ip_set_name": "blocks",
        "aws_log_group": "/ecs/web", "aws_target_group_arn": "arn:aws:elasticloadbalancing:tg"}


def test_building_every_lever_creates_no_client() -> None:
    levers = aws_levers(Settings(**FULL))
    assert levers.session._clients == {} and levers.session._session is None
    assert isinstance(levers.capacity, EcsCapacity) and isinstance(levers.deploys, EcsDeploys)
    assert isinstance(levers.edge, SsmEdge) and isinstance(levers.uploads, SsmUploadPolicy)
    assert isinstance(levers.blocks, WafBlocks) and isinstance(levers.logs, CloudWatchLogs)
    assert isinstance(levers.instances, ElbInstances)
    assert isinstance(levers.jobs, EcsJobs) and levers.jobs.job_services == ["report-export", "email-digest"]


def test_levers_the_settings_do_not_name_are_absent() -> None:
    levers = aws_levers(Settings(platform="aws", aws_capacity="none"))
    assert levers.capacity is None and levers.jobs is None and levers.blocks is None and levers.instances is None
    assert isinstance(aws_levers(Settings(platform="aws", aws_capacity="asg", aws_asg_name="web")).capacity,
                      AsgCapacity)
    with pytest.raises(ValueError, match="REMEDIATE_AWS_ASG_NAME"):
        aws_levers(Settings(platform="aws", aws_capacity="asg"))


async def test_without_a_log_group_reading_logs_says_what_is_missing() -> None:
    with pytest.raises(PlatformError, match="REMEDIATE_AWS_LOG_GROUP"):
        await aws_levers(Settings(platform="aws")).logs.lines()


def test_connect_builds_the_aws_bundle_without_touching_aws(tmp_path: object) -> None:
    providers = composition.connect(Settings(**FULL, home=tmp_path))
    assert isinstance(providers.capacity, EcsCapacity) and isinstance(providers.blocks, WafBlocks)
    assert isinstance(providers.instances, ElbInstances) and isinstance(providers.edge, SsmEdge)
    assert providers.database is None and providers.identity is None  # no lever named: the gate says NoLever
    assert providers.capacity.session._clients == {}


def test_clients_use_adaptive_retries_the_endpoint_and_the_region() -> None:
    session = AwsSession(AwsConfig(region="eu-west-1", endpoint_url="http://127.0.0.1:9", max_attempts=4))
    client = session.client("ecs")
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 4}
    assert client.meta.endpoint_url == "http://127.0.0.1:9" and client.meta.region_name == "eu-west-1"
    assert session.client("ecs") is client  # built once, shared


def test_a_refusal_is_a_client_error_with_its_code() -> None:
    exc = ClientError({"Error": {"Code": "ParameterNotFound", "Message": "Parameter /x not found."},
                       "ResponseMetadata": {"HTTPStatusCode": 400}}, "GetParameter")
    error = translate("ssm", "get_parameter", exc)
    assert (error.kind, error.code) == ("client", "ParameterNotFound") and error.is_("ParameterNotFound")
    assert "ssm.get_parameter refused: ParameterNotFound" in str(error)


def test_an_html_500_is_a_provider_error_whether_json_or_xml_client() -> None:
    json_client = ClientError({"Error": {"Code": "500", "Message": "<!doctype html>..."},
                               "ResponseMetadata": {"HTTPStatusCode": 500}}, "ListServiceDeployments")
    xml_client = ResponseParserError("Unable to parse response (syntax error), invalid XML received.\nb'<html>'")
    assert translate("ecs", "list_service_deployments", json_client).kind == "provider"
    error = translate("autoscaling", "start_instance_refresh", xml_client)
    assert (error.kind, error.code) == ("provider", "ResponseParserError")
    assert "not implemented there" in str(error) and "<html>" not in str(error)


async def test_an_unreachable_endpoint_is_a_transport_error() -> None:
    session = AwsSession(AwsConfig(region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1,
                                   connect_timeout_s=1))
    with pytest.raises(AwsError) as raised:
        await session.call("ssm", "get_parameter", Name="/x")
    assert raised.value.kind == "transport" and raised.value.code == EndpointConnectionError.__name__


async def test_no_credential_appears_in_errors_or_logs(monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    secret = "SEKRET-wJalrXUtnFEMI-K7MDENG-bPxRfiCY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", secret + "-token")
    caplog.set_level(logging.DEBUG)
    session = AwsSession(AwsConfig(region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1,
                                   connect_timeout_s=1))
    with pytest.raises(AwsError) as raised:
        await session.call("ssm", "put_parameter", Name="/x", Value="v", Type="String")
    assert secret not in str(raised.value) and secret not in repr(raised.value.__dict__)
    assert secret not in caplog.text
