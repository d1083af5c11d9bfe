"""Seeding moto with kamkmserve's AWS estate, the way a deployment would have set it up, and the settings that
point the AWS adapters at it. Every resource name here is what ``aws_settings`` configures."""

from __future__ import annotations

import json
from typing import Any

from remediation.settings import Settings
from tests.helpers.moto_server import REGION, MotoServer

CLUSTER = "kamkmserve"
WEB = "kamkmserve-web"
FAMILY = "kamkmserve-web"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/kamkmserve"
WORKERS = {  # the simulator's job pools, as ECS worker services
    "report-export": (2, True, "exports orders for accounting; long queries on kamkmserve_order"),
    "email-digest": (1, False, "daily digest e-mails; a few short reads"),
}
ASG = "kamkmserve-asg"
IP_SET = "kamkmserve-blocks"
PREFIX = "/kamkmserve/remediation"
LOG_GROUP = "/ecs/kamkmserve-web"
LOG_STREAM = "web/kamkmserve/0"
AMI = "ami-12c6146b"  # one of the images moto ships (listing them all costs seconds)
APP_ALLOWLIST = {"extensions": [".png", ".jpg", ".jpeg", ".webp", ".pdf"],
                 "mime_types": ["image/png", "image/jpeg", "image/webp", "application/pdf"]}


def aws_settings(moto: MotoServer, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "platform": "aws", "aws_endpoint_url": moto.url, "aws_region": REGION, "aws_max_attempts": 2,
        "aws_ecs_cluster": CLUSTER, "aws_ecs_service": WEB, "aws_job_services": list(WORKERS),
        "aws_waf_ip_set_name": IP_SET, "aws_ssm_prefix": PREFIX, "aws_log_group": LOG_GROUP,
    }
    return Settings(**{**base, **overrides})


def seed_ecs(moto: MotoServer, *, replicas: int = 2, versions: tuple[str, ...] = ("v1.4.2",)) -> None:
    """The cluster, one task-definition revision per version (oldest first) and the web service on the newest."""
    ecs = moto.client("ecs")
    ecs.create_cluster(clusterName=CLUSTER)
    for version in versions:
        ecs.register_task_definition(family=FAMILY, containerDefinitions=[
            {"name": "web", "image": f"{IMAGE}:{version}", "memory": 512, "essential": True}])
    ecs.create_service(cluster=CLUSTER, serviceName=WEB, taskDefinition=f"{FAMILY}:{len(versions)}",
                       desiredCount=replicas)


def seed_workers(moto: MotoServer) -> None:
    ecs = moto.client("ecs")
    ecs.register_task_definition(family="kamkmserve-worker", containerDefinitions=[
        {"name": "worker", "image": f"{IMAGE}:v1.4.2", "memory": 256}])
    for name, (workers, heavy, description) in WORKERS.items():
        ecs.create_service(cluster=CLUSTER, serviceName=name, taskDefinition="kamkmserve-worker:1",
                           desiredCount=workers, tags=[{"key": "remediate:heavy", "value": str(heavy).lower()},
                                                       {"key": "remediate:description", "value": description}])


def seed_asg(moto: MotoServer, *, low: int = 1, high: int = 6, desired: int = 2) -> None:
    autoscaling = moto.client("autoscaling")
    autoscaling.create_launch_configuration(LaunchConfigurationName="kamkmserve-lc", ImageId=AMI,
                                            InstanceType="t3.small")
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=ASG, LaunchConfigurationName="kamkmserve-lc",
                                          MinSize=low, MaxSize=high, DesiredCapacity=desired,
                                          AvailabilityZones=[f"{REGION}a"])


def seed_waf(moto: MotoServer) -> str:
    """The block-list IP set and the web ACL rule that references it; returns the set's id."""
    waf = moto.client("wafv2")
    summary = waf.create_ip_set(Name=IP_SET, Scope="REGIONAL", IPAddressVersion="IPV4", Addresses=[],
                                Description="remediation block list")["Summary"]
    waf.create_web_acl(Name="kamkmserve-edge", Scope="REGIONAL", DefaultAction={"Allow": {}},
                       VisibilityConfig=_visibility("kamkmserve-edge"), Rules=[{
                           "Name": "remediation-blocks", "Priority": 0, "Action": {"Block": {}},
                           "Statement": {"IPSetReferenceStatement": {"ARN": summary["ARN"]}},
                           "VisibilityConfig": _visibility("remediation-blocks")}])
    return str(summary["Id"])


def _visibility(name: str) -> dict[str, Any]:
    return {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": False, "MetricName": name}


def waf_addresses(moto: MotoServer) -> set[str]:
    waf = moto.client("wafv2")
    (summary,) = [s for s in waf.list_ip_sets(Scope="REGIONAL")["IPSets"] if s["Name"] == IP_SET]
    return set(waf.get_ip_set(Name=IP_SET, Scope="REGIONAL", Id=summary["Id"])["IPSet"]["Addresses"])


def seed_allowlist(moto: MotoServer, allowlist: dict[str, list[str]] | None = None) -> None:
    moto.client("ssm").put_parameter(Name=f"{PREFIX}/uploads/allowlist", Type="String",
                                     Value=json.dumps(allowlist or APP_ALLOWLIST))


def ssm_value(moto: MotoServer, name: str) -> str | None:
    ssm = moto.client("ssm")
    try:
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def seed_log_group(moto: MotoServer) -> None:
    logs = moto.client("logs")
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM)


def ship_logs(moto: MotoServer, events: list[tuple[int, str]]) -> None:
    """What the awslogs driver does: each stdout line becomes one event at the time it was printed."""
    logs = moto.client("logs")
    ordered = sorted(events, key=lambda e: e[0])
    for start in range(0, len(ordered), 1000):
        batch = ordered[start:start + 1000]
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM,
                            logEvents=[{"timestamp": at, "message": text} for at, text in batch])


def seed_target_group(moto: MotoServer, instances: int = 2) -> tuple[str, list[str]]:
    """An ELBv2 target group with ``instances`` EC2 instances registered; (its ARN, the instance ids)."""
    ec2, elb = moto.client("ec2"), moto.client("elbv2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    arn = elb.create_target_group(Name="kamkmserve-web", Protocol="HTTP", Port=3000, VpcId=vpc,
                                  TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    ids = [i["InstanceId"] for i in ec2.run_instances(ImageId=AMI, MinCount=instances, MaxCount=instances,
                                                        InstanceType="t3.small")["Instances"]]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": i} for i in ids])
    return str(arn), ids
