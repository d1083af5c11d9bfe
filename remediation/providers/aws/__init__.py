"""AWS implementations of the platform capabilities (boto3), proven against moto in server mode.

=============  ==============================================  ===========================================
capability     adapter                                         AWS service
=============  ==============================================  ===========================================
Capacity       :class:`EcsCapacity` / :class:`AsgCapacity`     ECS desiredCount / Auto Scaling group
Deploys        :class:`EcsDeploys`                             ECS task-definition revisions
EdgeControls   :class:`SsmEdge`                                SSM Parameter Store (maintenance, flags)
UploadPolicy   :class:`SsmUploadPolicy`                        SSM Parameter Store (allowlist JSON)
ActorBlocks    :class:`WafBlocks`                              WAFv2 IP set (+ TTL records in SSM)
Jobs           :class:`EcsJobs`                                ECS worker services
Instances      :class:`ElbInstances`                           ELBv2 target group + EC2 reboot
InstanceMetr.  :class:`ElbInstanceMetrics`                     target's own page; ALB counters (CloudWatch)
Logs           :class:`CloudWatchLogs`                         CloudWatch Logs FilterLogEvents
=============  ==============================================  ===========================================

:func:`aws_levers` builds them from settings; nothing connects until a capability is first used.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediation.providers.absent import NoLogs
from remediation.providers.aws.capacity import AsgCapacity, EcsCapacity
from remediation.providers.aws.deploys import EcsDeploys
from remediation.providers.aws.edge import SsmEdge, SsmUploadPolicy
from remediation.providers.aws.instance_metrics import ElbInstanceMetrics
from remediation.providers.aws.instances import ElbInstances
from remediation.providers.aws.jobs import EcsJobs
from remediation.providers.aws.logs import CloudWatchLogs
from remediation.providers.aws.params import SsmParameters
from remediation.providers.aws.session import AwsConfig, AwsError, AwsSession
from remediation.providers.aws.waf import WafBlocks
from remediation.providers.capabilities import Capacity, Clock, Logs
from remediation.providers.clock import RealClock
from remediation.settings import Settings

#: The service name runbooks use for the app (alert label ``service``); it maps to the configured ECS service / group.
APP_SERVICE = "kamkmserve"

__all__ = [
    "APP_SERVICE", "AsgCapacity", "AwsConfig", "AwsError", "AwsLevers", "AwsSession", "CloudWatchLogs", "EcsCapacity",
    "EcsDeploys", "EcsJobs", "ElbInstanceMetrics", "ElbInstances", "SsmEdge", "SsmParameters", "SsmUploadPolicy",
    "WafBlocks", "aws_levers",
]


@dataclass(frozen=True)
class AwsLevers:
    """What AWS provides; ``None`` where the settings name no resource (the gate then answers NoLever)."""

    session: AwsSession
    deploys: EcsDeploys
    edge: SsmEdge
    uploads: SsmUploadPolicy
    logs: Logs
    capacity: Capacity | None
    jobs: EcsJobs | None
    blocks: WafBlocks | None
    instances: ElbInstances | None
    # The rolling restart's stability readings (each target's own metrics page, the ALB's counters); with instances.
    instance_metrics: ElbInstanceMetrics | None = None


def aws_levers(settings: Settings, clock: Clock | None = None) -> AwsLevers:
    clock = clock or RealClock()
    session = AwsSession(AwsConfig(region=settings.aws.region, endpoint_url=settings.aws.endpoint_url,
                                   max_attempts=settings.aws.max_attempts, connect_timeout_s=settings.http_timeout_s))
    params = SsmParameters(session, settings.aws.ssm_prefix)
    cluster = settings.aws.ecs_cluster
    capacity: Capacity | None = None
    if settings.aws.capacity == "ecs":
        capacity = EcsCapacity(session, cluster, {APP_SERVICE: settings.aws.ecs_service})
    elif settings.aws.capacity == "asg":
        if not settings.aws.asg_name:
            raise ValueError("REMEDIATE_AWS_CAPACITY=asg needs REMEDIATE_AWS_ASG_NAME")
        capacity = AsgCapacity(session, {APP_SERVICE: settings.aws.asg_name})
    return AwsLevers(
        session=session,
        deploys=EcsDeploys(session, cluster, settings.aws.ecs_service),
        edge=SsmEdge(params),
        uploads=SsmUploadPolicy(params),
        logs=(CloudWatchLogs(session, settings.aws.log_group, stream_prefix=settings.aws.log_stream_prefix)
              if settings.aws.log_group else NoLogs("REMEDIATE_AWS_LOG_GROUP is not set")),
        capacity=capacity,
        jobs=EcsJobs(session, cluster, settings.aws.job_services) if settings.aws.job_services else None,
        blocks=(WafBlocks(session, params, settings.aws.waf_ip_set_name, scope=settings.aws.waf_scope,
                          ip_set_id=settings.aws.waf_ip_set_id, now=clock.now)
                if settings.aws.waf_ip_set_name else None),
        instances=(ElbInstances(session, default_target_group=settings.aws.target_group_arn,
                                poll_s=settings.aws.drain_poll_s, clock=clock)
                   if settings.aws.target_group_arn else None),
        # The run's clock dates its reading windows, as it dates the WAF's TTLs and the drains' deadlines.
        instance_metrics=(ElbInstanceMetrics(session, settings.aws.target_group_arn, timeout_s=settings.http_timeout_s,
                                             now=clock.now)
                          if settings.aws.target_group_arn else None),
    )
