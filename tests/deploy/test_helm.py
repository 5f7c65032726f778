"""The Helm chart, rendered offline by Helm's own engine (helm-python-sdk).

Every values file under helm/parley/ci/ (and the bare defaults) is rendered, linted and
validated against the Kubernetes API schemas; then the properties that matter in production
are asserted on the rendered objects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "parley"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VALUES_CASES = ["defaults", *(path.name for path in CI_VALUES)]
# The oldest Kubernetes the chart supports that kubernetes-validate ships schemas for.
KUBE_VERSION = "1.30.0"
# Custom resources that need their operator's CRDs; the core schemas do not know them.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
RELEASE = "parley"
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    manifests: list[Manifest]
    notes: str
    text: str  # every rendered template, concatenated, for "never appears" checks

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, component: str) -> Manifest:
        found = [m for m in self.of_kind(kind) if component_of(m) == component]
        assert len(found) == 1, f"{kind} {component}: {len(found)} found"
        return found[0]

    def parley_workloads(self) -> Iterator[Manifest]:
        for manifest in self.manifests:
            if manifest["kind"] in WORKLOAD_KINDS and component_of(manifest) != "redis":
                yield manifest


def component_of(manifest: Manifest) -> str | None:
    labels: dict[str, str] = manifest["metadata"].get("labels", {})
    return labels.get("app.kubernetes.io/component")


def values_of(case: str) -> dict[str, Any]:
    if case == "defaults":
        return {}
    loaded: dict[str, Any] = yaml.safe_load((CHART / "ci" / case).read_text()) or {}
    return loaded


def render(values: dict[str, Any]) -> Rendered:
    with helm.Chart.load(CHART) as chart:
        output = chart.render(values, name=RELEASE, namespace="bots")
    manifests = [
        doc
        for path, text in sorted(output.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    notes = next(text for path, text in output.items() if path.endswith("NOTES.txt"))
    return Rendered(manifests, notes, "\n".join(output.values()))


@cache
def rendered(case: str) -> Rendered:
    return render(values_of(case))


def container(workload: Manifest) -> Manifest:
    containers: list[Manifest] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(workload: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container(workload)["env"]}


def test_every_case_is_rendered() -> None:
    assert {"default-values.yaml", "external-redis-values.yaml", "socket-mode-values.yaml"} <= {
        path.name for path in CI_VALUES
    }
    assert {"discord-sharded-values.yaml", "hpa-values.yaml", "features-values.yaml"} <= {
        path.name for path in CI_VALUES
    }


@pytest.mark.parametrize("case", VALUES_CASES)
def test_chart_lints_clean(case: str) -> None:
    report = helm.lint(CHART, values_of(case), strict=True, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    # Severity 1 is "info" (only the missing icon); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("case", VALUES_CASES)
def test_every_manifest_matches_the_kubernetes_schemas(case: str) -> None:
    manifests = rendered(case).manifests
    assert manifests
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


@pytest.mark.parametrize("case", VALUES_CASES)
def test_parley_pods_are_probed_hardened_and_drain_slowly(case: str) -> None:
    workloads = list(rendered(case).parley_workloads())
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        main = container(workload)
        assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert main["readinessProbe"]["httpGet"]["port"] == "http"
        security = main["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        tmp = next(v for v in pod["volumes"] if v["name"] == "tmp")
        assert "emptyDir" in tmp
        assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
        assert main["resources"]["requests"] and main["resources"]["limits"]
        grace = float(env_of(workload)["BOT_SHUTDOWN_GRACE"]["value"])
        pre_stop = int(main["lifecycle"]["preStop"]["exec"]["command"][1])
        assert pod["terminationGracePeriodSeconds"] > grace + pre_stop
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert annotations["prometheus.io/port"] == str(main["ports"][0]["containerPort"])


def run_shard_script(statefulset: Manifest, ordinal: int) -> subprocess.CompletedProcess[str]:
    """Run the Discord pod's start-up command as the pod with this ordinal would."""
    main = container(statefulset)
    env = {"PATH": "/usr/bin:/bin"}
    for entry in main["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
    env["POD_NAME"] = f"{statefulset['metadata']['name']}-{ordinal}"
    assert main["args"] == ["parley", "serve"]
    # Instead of `parley serve`, show the environment the app would have been given.
    show = [sys.executable, "-c", "import os; print(os.environ['DISCORD_SHARD_IDS'])"]
    return subprocess.run(
        [*main["command"], *show], env=env, capture_output=True, text=True, check=False
    )


def shard_plan(statefulset: Manifest) -> list[list[int]]:
    plan = []
    for ordinal in range(statefulset["spec"]["replicas"]):
        result = run_shard_script(statefulset, ordinal)
        assert result.returncode == 0, result.stderr
        plan.append([int(shard) for shard in result.stdout.strip().split(",")])
    return plan


def test_discord_pods_each_run_their_own_shards() -> None:
    chart = rendered("discord-sharded-values.yaml")
    statefulset = chart.one("StatefulSet", "discord")
    env = env_of(statefulset)
    assert env["DISCORD_SHARD_COUNT"]["value"] == "4"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert shard_plan(statefulset) == [[0, 1], [2, 3]]
    # The operator sees the same plan in the install notes.
    assert "parley-discord-0: shards 0 to 1" in chart.notes
    assert "parley-discord-1: shards 2 to 3" in chart.notes
    # The governing Service the StatefulSet names exists.
    service = chart.one("Service", "discord")
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert not chart.of_kind("Deployment") and not chart.of_kind("Ingress")


@pytest.mark.parametrize(("shards", "pods"), [(1, 1), (5, 2), (4, 3), (16, 4), (7, 7)])
def test_every_shard_runs_on_exactly_one_pod(shards: int, pods: int) -> None:
    values = {
        "slack": {"enabled": False},
        "discord": {"enabled": True, "shardCount": shards, "replicas": pods},
    }
    plan = shard_plan(render(values).one("StatefulSet", "discord"))
    assert all(plan), plan  # no pod idles
    assert [shard for block in plan for shard in block] == list(range(shards))


def test_a_discord_pod_beyond_the_plan_refuses_to_start() -> None:
    statefulset = rendered("discord-sharded-values.yaml").one("StatefulSet", "discord")
    result = run_shard_script(statefulset, ordinal=2)
    assert result.returncode != 0
    assert "discord.replicas" in result.stderr


def test_each_workload_gets_only_its_platforms_tokens() -> None:
    slack = env_of(rendered("default-values.yaml").one("Deployment", "slack"))
    discord = env_of(rendered("discord-sharded-values.yaml").one("StatefulSet", "discord"))
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "EVOLINK_API_KEY"} <= slack.keys()
    assert not {"DISCORD_BOT_TOKEN", "SLACK_APP_TOKEN"} & slack.keys()
    assert {"DISCORD_BOT_TOKEN", "EVOLINK_API_KEY"} <= discord.keys()
    assert not {k for k in discord if k.startswith("SLACK_")}


def test_tokens_live_only_in_the_secret() -> None:
    chart = rendered("default-values.yaml")
    values = values_of("default-values.yaml")["secrets"]
    for token in values.values():
        assert token not in chart.text
    secret = chart.of_kind("Secret")
    assert len(secret) == 1
    assert set(secret[0]["data"]) == {"EVOLINK_API_KEY", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"}
    for entry in env_of(chart.one("Deployment", "slack")).values():
        if entry["name"] != "REDIS_URL" and "value" in entry:
            assert entry["value"] not in values.values()


def test_existing_secret_is_referenced_never_inlined() -> None:
    chart = rendered("external-redis-values.yaml")
    assert chart.of_kind("Secret") == []
    deployment = chart.one("Deployment", "slack")
    refs = [e["valueFrom"]["secretKeyRef"] for e in env_of(deployment).values() if "valueFrom" in e]
    assert {ref["name"] for ref in refs} == {"parley-tokens"}
    assert {ref["key"] for ref in refs} == {
        "EVOLINK_API_KEY",
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "REDIS_URL",
    }
    # No in-chart Redis when an external one is used.
    assert not [m for m in chart.manifests if component_of(m) == "redis"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations


def test_in_chart_redis_is_persistent_and_wired_in() -> None:
    chart = rendered("defaults")
    redis = chart.one("StatefulSet", "redis")
    claim = redis["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "--appendonly" in container(redis)["args"]
    service = chart.one("Service", "redis")
    url = env_of(chart.one("Deployment", "slack"))["REDIS_URL"]["value"]
    assert url == f"redis://{service['metadata']['name']}:6379/0"
    policy = chart.one("NetworkPolicy", "redis")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"

    ephemeral = render({"redis": {"persistence": {"enabled": False}}}).one("StatefulSet", "redis")
    assert "volumeClaimTemplates" not in ephemeral["spec"]
    assert ephemeral["spec"]["template"]["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


@pytest.mark.parametrize(
    ("case", "component"),
    [
        ("defaults", "slack"),
        ("socket-mode-values.yaml", "slack"),
        ("discord-sharded-values.yaml", "discord"),
    ],
)
def test_disruption_budget_covers_the_workload(case: str, component: str) -> None:
    chart = rendered(case)
    budget = chart.one("PodDisruptionBudget", component)
    workload = next(w for w in chart.parley_workloads() if component_of(w) == component)
    assert budget["spec"]["selector"] == workload["spec"]["selector"]
    assert budget["spec"]["maxUnavailable"] == 1


def test_http_mode_serves_slack_events_through_service_and_ingress() -> None:
    chart = rendered("hpa-values.yaml")
    service = chart.one("Service", "slack")
    ingress = chart.one("Ingress", "slack")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "parley.example.com"
    path = rule["http"]["paths"][0]
    assert (path["path"], path["pathType"]) == ("/slack/events", "Exact")
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert ingress["spec"]["tls"][0]["secretName"] == "parley-tls"
    assert "https://parley.example.com/slack/events" in chart.notes


def test_hpa_scales_the_deployment_when_on() -> None:
    chart = rendered("hpa-values.yaml")
    deployment = chart.one("Deployment", "slack")
    hpa = chart.one("HorizontalPodAutoscaler", "slack")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets["cpu"]["averageUtilization"] == 60
    assert targets["memory"]["averageUtilization"] == 80
    monitor = chart.of_kind("ServiceMonitor")[0]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"

    plain = rendered("defaults")
    assert plain.of_kind("HorizontalPodAutoscaler") == []
    assert plain.one("Deployment", "slack")["spec"]["replicas"] == 2


def test_socket_mode_has_no_ingress_and_uses_the_app_token() -> None:
    chart = rendered("socket-mode-values.yaml")
    assert chart.of_kind("Ingress") == []
    assert chart.of_kind("Service") == [chart.one("Service", "redis")]
    deployment = chart.one("Deployment", "slack")
    assert deployment["spec"]["replicas"] == 3
    env = env_of(deployment)
    assert "SLACK_APP_TOKEN" in env and "SLACK_SIGNING_SECRET" not in env
    assert "No Request URL is needed" in chart.notes


@pytest.mark.parametrize(
    "values",
    [
        {"slack": {"mode": "websocket"}},
        {"slack": {"mode": "socket", "replicas": 11}},
        {"slack": {"replicas": "two"}},
        {"discord": {"shardCount": 0}},
        {"config": {"SLACK_BOT_TOKEN": "xoxb-in-plain-config"}},
        {"config": {"lower_case": "x"}},
        {"externalRedis": {"url": "http://not-redis"}},
        {"shutdownGrace": -1},
        {"unknownKey": True},
        {"redis": {"enabled": False, "mode": "replicated"}},
        {"config": {"BOT_POLICY_FILE": "/etc/policy.yaml"}},
        {"config": {"ADMIN_TOKEN": "in-plain-config"}},
        {"limits": {"maxDocumentPages": 0}},
        {"limits": {"imageDecodePixels": "lots"}},
        {"mcp": {"servers": {"broken": {"args": ["no command or url"]}}}},
        {"policy": {"existingConfigMap": "Not_A_Name"}},
    ],
)
def test_values_schema_rejects_bad_values(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.render(values, name=RELEASE)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"slack": {"enabled": False}}, "enable slack.enabled"),
        (
            {"discord": {"enabled": True, "shardCount": 2, "replicas": 3}},
            "discord.replicas must not exceed",
        ),
        ({"redis": {"enabled": False}}, "externalRedis.url"),
        ({"redis": {"mode": "cluster"}}, "needs your own Redis"),
        (
            {
                "redis": {"enabled": False, "mode": "sentinel"},
                "externalRedis": {"url": "redis://s:26379"},
            },
            "redis.sentinelMaster",
        ),
        ({"admin": {"enabled": True}}, "secrets.adminToken"),
        ({"policy": {"content": "default: {}", "existingConfigMap": "x"}}, "not both"),
        ({"mcp": {"servers": {"a": {"url": "https://a"}}, "existingConfigMap": "x"}}, "not both"),
    ],
)
def test_impossible_combinations_fail_with_a_clear_message(
    values: dict[str, Any], message: str
) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmRenderError, match=message):
        chart.render(values, name=RELEASE)


def test_notes_name_what_is_missing() -> None:
    notes = rendered("defaults").notes
    assert "https://<your public host>/slack/events" in notes
    for key in ("secrets.evolinkApiKey", "secrets.slackBotToken", "secrets.slackSigningSecret"):
        assert key in notes
    assert "WARNING" not in rendered("default-values.yaml").notes


def mounted_file(chart: Rendered, workload: Manifest, env_name: str) -> tuple[str, Manifest]:
    """The ConfigMap name and the key behind the file an env var points at, checked to be
    mounted read-only as a whole directory (a subPath mount never sees an update)."""
    path = Path(env_of(workload)[env_name]["value"])
    main = container(workload)
    [mount] = [m for m in main["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount["readOnly"] is True and "subPath" not in mount
    volumes = workload["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == mount["name"]]
    assert volume["configMap"]["items"] == [{"key": path.name, "path": path.name}]
    return volume["configMap"]["name"], {"key": path.name}


def test_every_optional_feature_is_off_by_default() -> None:
    chart = rendered("defaults")
    for workload in chart.parley_workloads():
        env = env_of(workload)
        for name in ("REDIS_MODE", "REDIS_SENTINEL_MASTER", "ADMIN_TOKEN"):
            assert name not in env
        assert not {"BOT_POLICY_FILE", "BOT_MCP_CONFIG"} & env.keys()
        assert [m["name"] for m in container(workload)["volumeMounts"]] == ["tmp"]
    config = chart.of_kind("ConfigMap")
    assert [c["metadata"]["name"] for c in config] == ["parley"]
    assert not {"BOT_MAX_DOCUMENT_CHARS", "BOT_IMAGE_DECODE_PIXELS"} & config[0]["data"].keys()


def test_features_are_wired_into_every_parley_workload() -> None:
    values = values_of("features-values.yaml")
    values["discord"] = {"enabled": True}
    values["secrets"]["discordBotToken"] = "ci-discord-token"
    chart = render(values)
    workloads = list(chart.parley_workloads())
    assert {w["kind"] for w in workloads} == {"Deployment", "StatefulSet"}
    configmaps = {c["metadata"]["name"]: c for c in chart.of_kind("ConfigMap")}
    for workload in workloads:
        env = env_of(workload)
        assert env["REDIS_MODE"]["value"] == "sentinel"
        assert env["REDIS_SENTINEL_MASTER"]["value"] == "parley-master"
        assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"]["key"] == "REDIS_URL"
        assert env["ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": "parley",
            "key": "ADMIN_TOKEN",
        }
        assert env["SEARCH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "search-credentials"
        name, item = mounted_file(chart, workload, "BOT_POLICY_FILE")
        assert name == "parley-policy" and item["key"] in configmaps[name]["data"]
        name, item = mounted_file(chart, workload, "BOT_MCP_CONFIG")
        assert name == "parley-mcp" and item["key"] in configmaps[name]["data"]
        annotations = workload["spec"]["template"]["metadata"]["annotations"]
        # An MCP change restarts the pods; a policy change is re-read live, so it does not.
        assert "checksum/mcp" in annotations and "checksum/policy" not in annotations
    config = configmaps["parley"]["data"]
    assert config["BOT_MAX_DOCUMENT_CHARS"] == "100000"
    assert config["BOT_MAX_DOCUMENT_PAGES"] == "50"
    assert config["BOT_IMAGE_DECODE_PIXELS"] == "20000000"
    [secret] = chart.of_kind("Secret")
    assert "ADMIN_TOKEN" in secret["data"] and "ci-admin-token" not in chart.text
    assert "re-read it within about a minute, without a restart" in chart.notes
    assert "port-forward deployment/parley-slack" in chart.notes


def test_mounted_files_are_what_parley_reads(tmp_path: Path) -> None:
    from bot.policy.loader import read_policy_file

    values = values_of("features-values.yaml")
    configmaps = {c["metadata"]["name"]: c for c in render(values).of_kind("ConfigMap")}
    policy = tmp_path / "policy.yaml"
    policy.write_text(configmaps["parley-policy"]["data"]["policy.yaml"])
    assert policy.read_text() == values["policy"]["content"]  # lines as the operator wrote
    assert read_policy_file(policy).default.quota.user_tokens_per_day == 200000
    mcp = json.loads(configmaps["parley-mcp"]["data"]["mcp.json"])
    assert mcp == {"mcpServers": values["mcp"]["servers"]}


def test_own_configmaps_are_mounted_and_not_made() -> None:
    chart = render(
        {
            "redis": {"enabled": False, "mode": "cluster"},
            "externalRedis": {"url": "redis://node-0:6379,redis://node-1:6379"},
            "policy": {"existingConfigMap": "team-policy", "key": "rules.yaml"},
            "mcp": {"existingConfigMap": "team-mcp"},
            "admin": {"enabled": True},
            "secrets": {"existingSecret": "parley-tokens"},
        }
    )
    assert [c["metadata"]["name"] for c in chart.of_kind("ConfigMap")] == ["parley"]
    deployment = chart.one("Deployment", "slack")
    env = env_of(deployment)
    assert env["REDIS_MODE"]["value"] == "cluster" and "REDIS_SENTINEL_MASTER" not in env
    assert env["ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "parley-tokens"
    assert env["BOT_POLICY_FILE"]["value"] == "/etc/parley/policy/rules.yaml"
    assert mounted_file(chart, deployment, "BOT_POLICY_FILE")[0] == "team-policy"
    assert mounted_file(chart, deployment, "BOT_MCP_CONFIG")[0] == "team-mcp"
    for manifest in chart.manifests:
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
