"""InstanceMetrics on AWS: each target's own metrics page, read at the address its ELBv2 target group sends traffic
to, and the Application Load Balancer's own counters from CloudWatch.

Pages
    ``describe_target_health`` on the target group gives each target's ``Id`` and ``Port``. An instance target
    (``i-...``) is read at its private IP (``ec2.describe_instances``), an IP target (ECS ``awsvpc`` tasks) at its
    id; ``<scheme>://<address>:<port><metrics_path>``, i.e. ``http://10.0.1.17:3000/api/monitoring/metrics``. A
    drained target is no longer listed by the target group (ELBv2 lists registered targets only) but is read all
    the same, which the rolling restart needs while the instance is out: its address is remembered from an
    earlier read, else its port is the target group's default (what ``ElbInstances.restore`` registers it on).
    Addresses are kept until a read gets no answer at all, then looked up again (a replaced task, a new IP), so a
    reading costs one HTTP GET per instance and no AWS call. The page itself is judged as the simulator's is
    (``metrics.page_problem``) and parsed by the callers with the app's parser (``metrics.parse_request_stats``
    through ``instances.user_request_stats``): an error, an HTML page or an unreachable address is a page with
    ``error`` set, never an exception and never a healthy reading.

Rate limit
    kamkmserve limits ``/api/*`` to 100 requests/min per client IP (docs/reference/kamkmserve.md §8), in memory per
    instance unless Upstash is configured. It keys on the first ``X-Forwarded-For`` entry, else ``x-real-ip``, else
    ``unknown``: user traffic arrives through the ALB with its ``X-Forwarded-For`` and so never shares a bucket with us,
    while our direct reads carry neither header and land in that instance's ``unknown`` bucket, shared only with other
    direct callers (a Prometheus scraping the targets). Each instance therefore gets its own client with its own budget
    of :data:`DIRECT_BUDGET_PER_MIN` (90/min), leaving 10/min to the others. The runbook's reads are few: one per
    instance per SLO reading (every ``REMEDIATE_VERIFY_INTERVAL_S``, 15 s by default: 4/min), one for the inventory, and
    while it waits for one restarted instance a poll of that instance alone (every 0.25 s), which is what the budget
    caps: beyond it a read is refused locally (the page is unknown, the wait goes on) and never sent. With Upstash the
    limit is shared by every instance: pass an ``http`` factory whose clients share one ``RequestBudget`` (instances x
    readings must then stay under it).

Load balancer
    Settings from the target group (health check interval, healthy threshold, ``deregistration_delay``). Counters
    from CloudWatch ``AWS/ApplicationELB`` for each load balancer the target group is attached to (dimension
    ``LoadBalancer``): ``RequestCount``, ``HTTPCode_ELB_5XX_Count`` (answered by the load balancer itself: 502 a
    target reset or refused, 503 no target), ``HTTPCode_Target_5XX_Count``. They are one-minute sums, so the
    "running totals" the Protocol asks for are the sums since this adapter's first reading (start aligned to the
    minute): the last :data:`WINDOW` of minutes is re-read whole each time, so a datapoint that lands late (ALB
    publishes a minute's sums a minute or two after it ends) is still counted in the next reading's difference,
    only later; minutes older than that, and :data:`SETTLED` old, are added up once and carried (a long-lived
    worker does not re-read weeks of data, and totals never shrink when CloudWatch drops 15-day-old minutes).
    ``RequestCount`` leaves out requests refused before a target was chosen (the 503s), so the 5xx share can only
    be overstated, never hidden.
    Where the counters cannot be had the reading raises ``PlatformError`` (the runbook then reads the service as
    unknown and restarts nothing): a target group behind no load balancer, a Network Load Balancer (no HTTP
    counters), or a load balancer CloudWatch lists no ``RequestCount`` for (no traffic for two weeks, metrics in
    another account or region). moto keeps the ``AWS/ApplicationELB`` namespace empty (integrations reference
    §3.3): tests publish into it what the load balancer would.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp, Fetched
from remediation.providers.instances import LoadBalancerStatus, MetricsPage
from remediation.providers.metrics import METRICS_PATH, page_problem
from remediation.providers.platform import PlatformError

#: Direct reads per instance per minute: under the app's 100/min per client IP, with room for other direct callers.
DIRECT_BUDGET_PER_MIN = 90
NAMESPACE = "AWS/ApplicationELB"
#: LoadBalancerStatus field -> CloudWatch metric (dimension LoadBalancer, statistic Sum).
COUNTERS = {"requests": "RequestCount", "elb_5xx": "HTTPCode_ELB_5XX_Count",
            "target_5xx": "HTTPCode_Target_5XX_Count"}
DEFAULT_DEREGISTRATION_DELAY_S = 300.0  # ELBv2's default, when the attribute is not returned
PERIOD_S = 60
WINDOW = timedelta(hours=1)  # re-read on every reading; beyond it, settled minutes are carried
SETTLED = timedelta(minutes=5)  # an ALB minute is published well within this
MAX_PAGES = 20  # of GetMetricData answers per query: a bound, not a loop

#: Builds the client for one instance's base URL (``http://10.0.1.17:3000``); tests point it at local servers.
HttpFactory = Callable[[str], AppHttp]


class ElbInstanceMetrics:
    """:class:`~remediation.providers.capabilities.InstanceMetrics` for the targets of one ELBv2 target group (the
    app's web service, whatever the ``service`` name a runbook passes, as :class:`ElbInstances` with a default
    target group)."""

    def __init__(self, session: AwsSession, target_group_arn: str, *, scheme: Literal["http", "https"] = "http",
                 metrics_path: str = METRICS_PATH, timeout_s: float = 5.0,
                 budget_per_min: int = DIRECT_BUDGET_PER_MIN, http: HttpFactory | None = None,
                 now: Callable[[], datetime] | None = None) -> None:
        if not metrics_path.startswith("/"):
            raise ValueError(f"metrics_path must start with '/': {metrics_path!r}")
        self.session = session
        self.target_group_arn = target_group_arn
        self.scheme = scheme
        self.metrics_path = metrics_path
        self.timeout_s = timeout_s
        self.budget_per_min = budget_per_min
        self._http = http or self._direct_http
        self._now = now or (lambda: datetime.now(UTC))
        self._clients: dict[str, AppHttp] = {}
        self._addresses: dict[str, str] = {}  # target id -> base URL
        self._published: set[str] = set()  # load balancers CloudWatch was seen to hold RequestCount for
        self._since: datetime | None = None  # start of the re-read window (at first: the first reading's minute)
        self._carried = dict.fromkeys(COUNTERS, 0.0)  # sums of the settled minutes before it

    # -- pages --------------------------------------------------------------------------------------------------

    async def metrics_page(self, service: str, instance_id: str) -> MetricsPage:
        try:
            base = await self._base_url(instance_id)
        except PlatformError as exc:
            return MetricsPage(instance_id=instance_id, error=f"{instance_id}: no address to read its page at: {exc}")
        fetched = await self._client(base).get(self.metrics_path)
        if problem := page_problem(fetched):
            if _unanswered(fetched):
                self._addresses.pop(instance_id, None)  # look the address up again next time
            return MetricsPage(instance_id=instance_id, error=problem)
        return MetricsPage(instance_id=instance_id, text=fetched.text)

    def _direct_http(self, base_url: str) -> AppHttp:
        return AppHttp(base_url, RequestBudget(self.budget_per_min), timeout_s=self.timeout_s)

    def _client(self, base_url: str) -> AppHttp:
        client = self._clients.get(base_url)
        if client is None:
            client = self._clients[base_url] = self._http(base_url)
        return client

    async def _base_url(self, target_id: str) -> str:
        known = self._addresses.get(target_id)
        if known is not None:
            return known
        host = await self._host(target_id)
        port = await self._port(target_id)
        base = f"{self.scheme}://{f'[{host}]' if ':' in host else host}:{port}"
        self._addresses[target_id] = base
        return base

    async def _host(self, target_id: str) -> str:
        if not target_id.startswith("i-"):
            try:
                return str(ipaddress.ip_address(target_id))
            except ValueError:
                raise PlatformError(f"{target_id!r} is neither an EC2 instance id nor an IP address (a Lambda "
                                    "target has no metrics page)") from None
        try:
            body = await self.session.call("ec2", "describe_instances", InstanceIds=[target_id])
        except AwsError as exc:
            if exc.is_("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                raise PlatformError(f"no EC2 instance {target_id}") from exc
            raise
        found = [i for r in body.get("Reservations", []) for i in r.get("Instances", [])
                 if i.get("InstanceId") == target_id]
        if not found:
            raise PlatformError(f"no EC2 instance {target_id}")
        address = found[0].get("PrivateIpAddress")
        if not address:
            state = found[0].get("State", {}).get("Name", "unknown")
            raise PlatformError(f"EC2 instance {target_id} has no private IP (state {state})")
        return str(address)

    async def _port(self, target_id: str) -> int:
        """The port the target group sends the target traffic on; for a target it no longer lists (drained), the
        group's default port (explicit queries for unregistered targets answer ports that mean nothing)."""
        body = await self._elb("describe_target_health", TargetGroupArn=self.target_group_arn)
        for item in body.get("TargetHealthDescriptions", []):
            target = item.get("Target", {})
            if target.get("Id") == target_id and target.get("Port"):
                return int(target["Port"])
        port = (await self._group()).get("Port")
        if not port:
            raise PlatformError(f"target group {self.target_group_arn} has no port (a Lambda target group?)")
        return int(port)

    # -- load balancer --------------------------------------------------------------------------------------------

    async def load_balancer(self, service: str) -> LoadBalancerStatus:
        group = await self._group()
        attributes = await self._elb("describe_target_group_attributes", TargetGroupArn=self.target_group_arn)
        delay = next((a.get("Value") for a in attributes.get("Attributes", [])
                      if a.get("Key") == "deregistration_delay.timeout_seconds"), None)
        balancers = [_dimension(arn) for arn in group.get("LoadBalancerArns") or []]
        if not balancers:
            raise PlatformError(f"target group {self.target_group_arn} is behind no load balancer: no load balancer "
                                "counters to read")
        other = [name for name in balancers if not name.startswith("app/")]
        if other:
            raise PlatformError(f"{', '.join(other)} is not an Application Load Balancer: CloudWatch has no HTTP "
                                "request or 5xx counters for it")
        totals = await self._totals(balancers)
        try:
            return LoadBalancerStatus(
                deregistration_delay_s=float(delay) if delay is not None else DEFAULT_DEREGISTRATION_DELAY_S,
                health_interval_s=float(group["HealthCheckIntervalSeconds"]),
                healthy_threshold=int(group["HealthyThresholdCount"]), **totals)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlatformError(f"target group {self.target_group_arn}: unexpected settings ({exc})") from exc

    async def _totals(self, balancers: list[str]) -> dict[str, int]:
        for name in balancers:
            await self._check_published(name)
        now = self._now()
        if self._since is None:
            self._since = _minute(now)
        elif now - self._since > WINDOW:
            cut = _minute(now - SETTLED)
            settled = await self._sums(balancers, self._since, cut)
            self._carried = {field: self._carried[field] + settled[field] for field in COUNTERS}
            self._since = cut
        recent = await self._sums(balancers, self._since, now + timedelta(seconds=2 * PERIOD_S))
        return {field: round(self._carried[field] + recent[field]) for field in COUNTERS}

    async def _sums(self, balancers: list[str], start: datetime, end: datetime) -> dict[str, float]:
        """Each counter's sum over [start, end) (minute-aligned start), over every load balancer."""
        queries = [{"Id": f"m{n}_{field}", "ReturnData": True,
                    "MetricStat": {"Metric": {"Namespace": NAMESPACE, "MetricName": metric,
                                              "Dimensions": [{"Name": "LoadBalancer", "Value": name}]},
                                   "Period": PERIOD_S, "Stat": "Sum"}}
                   for n, name in enumerate(balancers) for field, metric in COUNTERS.items()]
        sums = dict.fromkeys(COUNTERS, 0.0)
        params: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
        for _ in range(MAX_PAGES):
            body = await self.session.call("cloudwatch", "get_metric_data", **params)
            for result in body.get("MetricDataResults", []):
                status = result.get("StatusCode", "Complete")
                if status not in ("Complete", "PartialData"):
                    raise PlatformError(f"CloudWatch {result.get('Label') or result.get('Id')}: {status} "
                                        f"({'; '.join(m.get('Value', '') for m in result.get('Messages', []))})")
                sums[str(result["Id"]).split("_", 1)[1]] += sum(float(v) for v in result.get("Values", []))
            token = body.get("NextToken")
            if not token:
                return sums
            params["NextToken"] = token
        raise PlatformError(f"CloudWatch answered more than {MAX_PAGES} pages of {NAMESPACE} sums from "
                            f"{start.isoformat()}: the totals are not complete")

    async def _check_published(self, name: str) -> None:
        """CloudWatch must hold the load balancer's RequestCount, else its counters are unknown (not zero)."""
        if name in self._published:
            return
        dimensions = [{"Name": "LoadBalancer", "Value": name}]
        body = await self.session.call("cloudwatch", "list_metrics", Namespace=NAMESPACE,
                                       MetricName=COUNTERS["requests"], Dimensions=dimensions)
        if not any(m.get("Dimensions") == dimensions for m in body.get("Metrics", [])):
            raise PlatformError(f"CloudWatch holds no {NAMESPACE} {COUNTERS['requests']} for load balancer {name} "
                                "(an ALB publishes it while requests flow; listed for two weeks): its own 5xx are "
                                "unknown")
        self._published.add(name)

    async def _group(self) -> dict[str, Any]:
        body = await self._elb("describe_target_groups", TargetGroupArns=[self.target_group_arn])
        groups = body.get("TargetGroups", [])
        if not groups:
            raise PlatformError(f"no target group {self.target_group_arn}")
        group: dict[str, Any] = groups[0]
        return group

    async def _elb(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return await self.session.call("elbv2", operation, **params)
        except AwsError as exc:
            if exc.is_("TargetGroupNotFound"):
                raise PlatformError(f"no target group {self.target_group_arn}: {exc.detail}") from exc
            raise


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _dimension(load_balancer_arn: str) -> str:
    """CloudWatch's ``LoadBalancer`` dimension: the ARN's resource part after ``loadbalancer/`` (``app/web/1f2e``)."""
    return load_balancer_arn.split(":loadbalancer/", 1)[-1]


def _unanswered(fetched: Fetched) -> bool:
    """Nothing answered at that address (refused, timed out), as opposed to the app answering or our own budget
    holding the read back."""
    return fetched.status is None and not (fetched.error or "").startswith("not sent")
