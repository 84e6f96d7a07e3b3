"""The production stack files: docker-compose.yml and deploy/ (Dockerfile, Prometheus, Alertmanager, Kubernetes).

Static checks, no Docker engine, cluster or network: the compose file against the Compose Specification
schema, bind mounts and Dockerfiles that exist, Kubernetes manifests listed in their kustomization,
``DRIFTLOOP_*`` names that are real settings, and promtool/amtool on the Prometheus and Alertmanager
configs (skipped when those tools are missing, a failure with ``DRIFTLOOP_REQUIRE_SERVICES=1``).
Security: only the API and Grafana published, no admin surface left on, every secret from a required
variable (compose) or a secretKeyRef (Kubernetes), and network policies that deny by default.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from jsonschema import Draft7Validator
from jsonschema.validators import validator_for

from core.secrets import new_key
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT.parent / "shared" / "schemas" / "compose-spec.json"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
REQUIRE_SERVICES = os.environ.get("DRIFTLOOP_REQUIRE_SERVICES") == "1"

PREFIX = "DRIFTLOOP_"
SETTING_NAMES = {PREFIX + name.upper() for name in Settings.model_fields}
# ${NAME}, ${NAME-default}, ${NAME:-default}, ... (compose interpolation)
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
# ${NAME:?message}: compose refuses to run while NAME is unset or empty
REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")
# names of variables that hold secrets, and the command-line flags that take one
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|_AUTH$", re.IGNORECASE)
SECRET_FLAGS = ("--api-key", "--requirepass", "--password")
# the password of a scheme://user:password@host URL
URL_PASSWORD = re.compile(r"://[^/@\s]*:([^@/\s]*)@")
STACK_SECRETS = {"GRAFANA_ADMIN_PASSWORD", "REDIS_PASSWORD", "VLLM_API_KEY"}
PUBLISHED = {"api", "grafana"}


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def bind_mounts() -> list[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount in the compose file."""
    mounts = []
    for name, service in services().items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                target = rest.split(":")[0]
                if source.startswith((".", "/", "~")):
                    mounts.append((name, source, target))
            elif volume.get("type") == "bind":
                mounts.append((name, volume["source"], volume["target"]))
    return mounts


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def interpolate_defaults(value: str) -> str:
    """A compose value as it reads with no variable set in the shell or .env."""
    return INTERPOLATION.sub(lambda m: (m.group(3) or "") if m.group(2) in ("-", ":-") else "", value)


def k8s_documents() -> dict[Path, list[dict[str, Any]]]:
    """The manifests of deploy/k8s (``*.example.yaml`` are examples, not applied)."""
    return {
        path: [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
        for path in sorted(K8S.glob("*.y*ml"))
        if not path.name.endswith(".example.yaml")
    }


def example_secret() -> dict[str, str]:
    """The keys and placeholder values of the Secret that operators create (secret.example.yaml)."""
    secret = yaml.safe_load(SECRET_EXAMPLE.read_text(encoding="utf-8"))
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "driftloop-secrets"
    return secret["stringData"]


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [doc for docs in k8s_documents().values() for doc in docs if doc.get("kind") == kind]


def tool(name: str) -> str:
    """Path of a command-line tool; skip (or fail when services are required) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not on PATH (Debian packages prometheus / prometheus-alertmanager)"
        if REQUIRE_SERVICES:
            pytest.fail(f"DRIFTLOOP_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
    return path


# --- docker-compose.yml ------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.fail(
            f"the Compose Specification JSON schema is missing: expected {COMPOSE_SCHEMA} "
            "(shared/schemas/compose-spec.json beside the repository)"
        )
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    # The schema names its draft as https://json-schema.org/draft-07/schema; jsonschema knows the http:// form.
    dialect = str(schema.get("$schema", "")).replace("https://", "http://").rstrip("#")
    validator_class = validator_for({"$schema": dialect + "#"}, default=Draft7Validator)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose()), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
    assert "version" not in compose(), "the Compose Specification has no top-level version"


def test_compose_has_the_stack_services() -> None:
    expected = {"kafka", "redis", "prometheus", "alertmanager", "grafana", "vllm", "worker", "api"}
    assert expected <= set(services())
    assert services()["vllm"].get("profiles") == ["gpu"], "vLLM needs a GPU: only under --profile gpu"


@pytest.mark.parametrize(("service", "source", "target"), bind_mounts(), ids=lambda value: str(value))
def test_compose_bind_mounts_exist(service: str, source: str, target: str) -> None:
    assert source.startswith("./"), f"{service}: bind mounts stay inside the repository, got {source}"
    assert (ROOT / source).exists(), f"{service} mounts {source} at {target}, but {ROOT / source} does not exist"


def test_compose_builds_from_existing_dockerfiles() -> None:
    built = {name: service["build"] for name, service in services().items() if "build" in service}
    assert {"worker", "api"} <= set(built)
    for name, build in built.items():
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / ("Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile"))
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} does not exist"


def test_dockerfile_runs_driftloop_as_a_non_root_user_without_embedded_services() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.findall(r"(?im)^FROM\s+(\S+)", text) == ["python:3.11-slim", "python:3.11-slim"]
    final_stage = re.split(r"(?im)^FROM\s", text)[-1]
    users = re.findall(r"(?im)^USER\s+(\S+)", final_stage)
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    assert re.search(r'(?im)^ENTRYPOINT\s+\["driftloop"\]\s*$', text)
    assert re.search(r'(?im)^CMD\s+\["api",\s*"--host",\s*"0\.0\.0\.0"\]\s*$', text)
    assert "embedded" not in " ".join(re.findall(r"(?im)^RUN\s.*pip install.*$", text)), "production uses real Kafka"
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for path in (".venv", ".driftloop", ".pytest_cache", ".ruff_cache"):
        assert path in ignored, f"{path} belongs in deploy/Dockerfile.dockerignore"


def test_compose_driftloop_services_share_settings_and_datasets() -> None:
    for name in ("worker", "api"):
        service = services()[name]
        env = {key: interpolate_defaults(value) for key, value in environment(service).items()}
        assert env["DRIFTLOOP_KAFKA_BOOTSTRAP"] == "kafka:9092"
        redis_url = urlsplit(env["DRIFTLOOP_REDIS_URL"])
        assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", "redis", 6379)
        assert env["DRIFTLOOP_DATA_DIR"] == "/data"
        assert any(str(volume).endswith(":/data") for volume in service["volumes"])
        for dependency in ("kafka", "redis"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
    assert services()["worker"]["command"] == ["worker"]
    assert services()["api"]["command"][0] == "api"


# --- docker-compose.yml: admin surfaces and secrets ------------------------------------------------------


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command") or []
    return value.split() if isinstance(value, str) else [str(arg) for arg in value]


def compose_values(node: Any) -> list[str]:
    """Every string value under ``node`` of docker-compose.yml (compose interpolates values, not comments)."""
    if isinstance(node, dict):
        return [value for child in node.values() for value in compose_values(child)]
    if isinstance(node, list):
        return [value for child in node for value in compose_values(child)]
    return [node] if isinstance(node, str) else []


def is_variable(value: str) -> bool:
    """``value`` is one compose variable and nothing else: required, or optional without a default."""
    match = INTERPOLATION.fullmatch(value)
    return bool(match) and (match.group(2) in ("?", ":?") or not match.group(3))


def test_compose_publishes_only_the_api_and_grafana() -> None:
    published = {name for name, service in services().items() if service.get("ports")}
    assert published == PUBLISHED, f"published on the host: {sorted(published)}, want only {sorted(PUBLISHED)}"
    on_host = {name for name, service in services().items() if service.get("network_mode") == "host"}
    assert not on_host, f"on the host's network, so every port is open: {on_host}"


def test_compose_keeps_kafka_and_redis_on_an_internal_network() -> None:
    assert compose()["networks"]["data"] == {"internal": True}
    on_data = {name for name, service in services().items() if "data" in service.get("networks", [])}
    assert on_data == {"kafka", "redis", "worker", "api"}, "Kafka and Redis serve the worker and the API only"
    for name in ("kafka", "redis"):
        assert services()[name]["networks"] == ["data"], f"{name} is on other networks"


def test_prometheus_lifecycle_and_admin_api_are_off() -> None:
    flags = command(services()["prometheus"])
    for flag in ("--web.enable-lifecycle", "--web.enable-admin-api"):
        assert not any(arg.startswith(flag) for arg in flags), f"{flag}: anyone on the network can quit or wipe it"


def test_compose_secrets_come_from_required_variables() -> None:
    """No password, key or token is written in the file or defaulted: each is a variable read from .env."""
    literal = []
    for name, service in services().items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not is_variable(value):
                literal.append(f"{name}: {key}={value}")
            literal += [f"{name}: {key} URL password {pw}" for pw in URL_PASSWORD.findall(value) if not is_variable(pw)]
        args = command(service)
        for flag, value in itertools.pairwise(args):
            if flag in SECRET_FLAGS and not REQUIRED.fullmatch(value):
                literal.append(f"{name}: {flag} {value}")
    assert not literal, "secrets written in docker-compose.yml:\n" + "\n".join(literal)
    variables = [m for value in compose_values(compose()) for m in INTERPOLATION.finditer(value)]
    defaulted = [m.group(0) for m in variables if SECRET_NAME.search(m.group(1)) and m.group(3)]
    defaulted = [value for value in defaulted if not REQUIRED.fullmatch(value)]
    assert not defaulted, f"secrets with a default value: {defaulted}"


def test_compose_refuses_to_start_without_its_secrets() -> None:
    """Each secret is ${NAME:?...} (unset or empty stops compose); .env.example lists them all, empty."""
    required = {name for value in compose_values(compose()) for name in REQUIRED.findall(value)}
    assert required >= STACK_SECRETS, f"not required: {STACK_SECRETS - required}"
    example = dict(
        line.partition("=")[::2]
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert set(example) == required, "the required variables of docker-compose.yml are the entries of .env.example"
    assert not any(example.values()), f".env.example holds values, which would work as real secrets: {example}"


def test_vllm_wants_an_api_key_that_the_worker_and_the_api_send() -> None:
    args = command(services()["vllm"])
    assert "--api-key" in args, "vLLM without --api-key serves anyone on the network"
    [key] = REQUIRED.findall(args[args.index("--api-key") + 1])
    for name in ("worker", "api"):
        sent = REQUIRED.findall(environment(services()[name]).get("DRIFTLOOP_LLM_API_KEY", ""))
        assert sent == [key], f"{name} does not send vLLM's key {key} as DRIFTLOOP_LLM_API_KEY"
    assert "ports" not in services()["vllm"]


# --- DRIFTLOOP_* names are settings --------------------------------------------------------------------


def compose_driftloop_names() -> set[str]:
    names = {key for service in services().values() for key in environment(service)}
    names |= {match.group(1) for match in INTERPOLATION.finditer(COMPOSE_FILE.read_text(encoding="utf-8"))}
    return {name for name in names if name.startswith(PREFIX)}


def k8s_driftloop_env() -> dict[str, str]:
    """The pods' DRIFTLOOP_* variables, secretKeyRefs read from the placeholders of secret.example.yaml."""
    secret = example_secret()
    env: dict[str, str] = {}
    for config_map in k8s_objects("ConfigMap"):
        env |= {key: str(value) for key, value in (config_map.get("data") or {}).items()}
    for deployment in k8s_objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                env[item["name"]] = secret[ref["key"]] if ref else str(item.get("value", ""))
    # the example's key is a placeholder (a pod with it does not start); the operator's is a real Fernet key
    if "DRIFTLOOP_SECRET_KEYS" in env:
        env["DRIFTLOOP_SECRET_KEYS"] = new_key()
    return {key: value for key, value in env.items() if key.startswith(PREFIX)}


def test_driftloop_env_names_are_settings() -> None:
    compose_names = compose_driftloop_names()
    k8s_names = set(k8s_driftloop_env())
    assert compose_names, "docker-compose.yml sets no DRIFTLOOP_* variable"
    assert k8s_names, "deploy/k8s sets no DRIFTLOOP_* variable"
    assert not compose_names - SETTING_NAMES, f"not settings (docker-compose.yml): {compose_names - SETTING_NAMES}"
    assert not k8s_names - SETTING_NAMES, f"not settings (deploy/k8s): {k8s_names - SETTING_NAMES}"


@pytest.mark.parametrize("where", ["compose-worker", "compose-api", "k8s"])
def test_driftloop_env_values_are_valid_settings(where: str) -> None:
    if where == "k8s":
        env = k8s_driftloop_env()
    else:
        env = {
            key: interpolate_defaults(value)
            for key, value in environment(services()[where.removeprefix("compose-")]).items()
        }
    fields = {key[len(PREFIX) :].lower(): value for key, value in env.items() if key.startswith(PREFIX)}
    settings = Settings(_env_file=None, **fields)
    assert settings.kafka_bootstrap and settings.redis_url
    assert settings.api_host == "0.0.0.0", "the worker's /metrics and the API must listen on all interfaces"
    assert not settings.api_docs, "production serves no /docs or /openapi.json"


# --- Kubernetes -------------------------------------------------------------------------------------------


def test_k8s_manifests_parse_and_are_all_in_the_kustomization() -> None:
    documents = k8s_documents()
    kustomization = K8S / "kustomization.yaml"
    assert kustomization in documents, "deploy/k8s/kustomization.yaml is missing"
    resources = documents.pop(kustomization)[0]["resources"]
    assert sorted(resources) == sorted(path.name for path in documents), "kustomization.yaml resources != manifests"
    for path, docs in documents.items():
        assert docs, f"{path.name} is empty"
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), path.name


def test_k8s_workloads() -> None:
    deployments = {doc["metadata"]["name"]: doc for doc in k8s_objects("Deployment")}
    assert set(deployments) == {"driftloop-worker", "driftloop-api"}
    partitions = int(k8s_driftloop_env()["DRIFTLOOP_TOPIC_PARTITIONS"])
    assert deployments["driftloop-worker"]["spec"]["replicas"] <= partitions, "workers beyond the partitions idle"
    api = deployments["driftloop-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    config_maps = {doc["metadata"]["name"] for doc in k8s_objects("ConfigMap")}
    claims = {doc["metadata"]["name"]: doc for doc in k8s_objects("PersistentVolumeClaim")}
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
        assert pod["spec"].get("enableServiceLinks") is False, "service links inject DRIFTLOOP_API_PORT=tcp://..."
        container = pod["spec"]["containers"][0]
        assert {ref["configMapRef"]["name"] for ref in container["envFrom"]} <= config_maps
        for volume in pod["spec"]["volumes"]:
            claim = claims[volume["persistentVolumeClaim"]["claimName"]]
            assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_k8s_kustomization_renders() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not on PATH")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = sorted(doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc)
    written = sorted(doc["kind"] for docs in k8s_documents().values() for doc in docs if doc["kind"] != "Kustomization")
    assert rendered == written


def test_k8s_secrets_come_from_a_secret_you_create() -> None:
    """Secret values are never in the manifests: secretKeyRefs to driftloop-secrets, an example with placeholders."""
    assert not k8s_objects("Secret"), "kubectl apply -k would overwrite real secrets with the manifests' values"
    example = example_secret()
    assert all("CHANGE_ME" in value for value in example.values()), "secret.example.yaml holds placeholders only"
    for config_map in k8s_objects("ConfigMap"):
        for key, value in (config_map.get("data") or {}).items():
            assert not SECRET_NAME.search(key), f"secret {key} in ConfigMap {config_map['metadata']['name']}"
            assert not URL_PASSWORD.search(str(value)), f"{key} carries a password in a ConfigMap"
    for deployment in k8s_objects("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            refs = {}
            for item in container.get("env", []):
                assert "value" not in item or not SECRET_NAME.search(item["name"]), f"{item['name']} written inline"
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "driftloop-secrets" and not ref.get("optional"), item
                    refs[item["name"]] = ref["key"]
            name = deployment["metadata"]["name"]
            assert set(refs.values()) == set(example), f"{name} reads {sorted(refs.values())}, the Secret has {example}"
            assert {"DRIFTLOOP_REDIS_URL", "DRIFTLOOP_LLM_API_KEY"} <= set(refs), name


def selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are checked here"
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def allows(rule: dict[str, Any], port: int | str, protocol: str = "TCP") -> bool:
    ports = rule.get("ports") or [{}]
    return any(p.get("port") in (None, port) and p.get("protocol", "TCP") == protocol for p in ports)


def url_port(url: str, default: int) -> int:
    return urlsplit(url if "://" in url else f"tcp://{url}").port or default


def test_k8s_network_policies_deny_by_default_and_open_only_what_is_needed() -> None:
    policies = k8s_objects("NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and not {"ingress", "egress"} & set(p["spec"])]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}, "no default-deny policy"
    for deployment in k8s_objects("Deployment"):
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        rules = [rule for p in policies if selects(p, labels) for rule in p["spec"].get("ingress", [])]
        for container in pod["spec"]["containers"]:
            for port in container.get("ports", []):
                allowing = [rule for rule in rules if allows(rule, port["name"]) or allows(rule, port["containerPort"])]
                assert allowing, f"{deployment['metadata']['name']}: nothing may reach port {port['name']}"
                if port["name"] == "metrics":
                    assert all(rule.get("from") for rule in allowing), "worker metrics: from Prometheus only"
        egress = [rule for p in policies if selects(p, labels) for rule in p["spec"].get("egress", [])]
        env = k8s_driftloop_env()
        needed = {
            ("DNS", 53, "UDP"),
            ("Kafka", url_port(env["DRIFTLOOP_KAFKA_BOOTSTRAP"], 9092), "TCP"),
            ("Redis", url_port(env["DRIFTLOOP_REDIS_URL"], 6379), "TCP"),
            ("vLLM", url_port(env["DRIFTLOOP_LLM_BASE_URL"], 80), "TCP"),
        }
        for what, port, protocol in needed:
            assert any(rule.get("to") and allows(rule, port, protocol) for rule in egress), f"no egress to {what}"
        blocks = [peer["ipBlock"] for rule in egress for peer in rule.get("to", []) if "ipBlock" in peer]
        for block in blocks:
            if block["cidr"] == "0.0.0.0/0":
                assert {"169.254.0.0/16", "10.0.0.0/8"} <= set(block["except"]), "cloud metadata and the cluster"


# --- Prometheus and Alertmanager ------------------------------------------------------------------------


def test_prometheus_targets_are_compose_services() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    targets += [
        target for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for target in s["targets"]
    ]
    hosts = {target.split(":")[0] for target in targets} - {"localhost"}
    assert {"api", "worker", "alertmanager"} <= hosts
    assert hosts <= set(services()), f"targets that are no compose service: {hosts - set(services())}"
    assert "api:8000" in targets and "worker:9108" in targets


def test_promtool_checks_the_prometheus_config(tmp_path: Path) -> None:
    """promtool on prometheus.yml, its rule files read from the host paths compose mounts them from."""
    promtool = tool("promtool")
    mounted = {target: ROOT / source for service, source, target in bind_mounts() if service == "prometheus"}
    assert mounted.get("/etc/prometheus/prometheus.yml") == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    rule_files = config.get("rule_files") or []
    assert rule_files, "prometheus.yml loads no alert rules"
    unmounted = [path for path in rule_files if path not in mounted]
    assert not unmounted, f"rule files not mounted into the prometheus service: {unmounted}"
    config["rule_files"] = [str(mounted[path]) for path in rule_files]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    result = subprocess.run([promtool, "check", "config", str(copy)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_checks_the_alertmanager_config() -> None:
    amtool = tool("amtool")
    mounted = {target: ROOT / source for service, source, target in bind_mounts() if service == "alertmanager"}
    assert mounted.get("/etc/alertmanager/alertmanager.yml") == ALERTMANAGER_CONFIG
    result = subprocess.run(
        [amtool, "check-config", str(ALERTMANAGER_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    route = yaml.safe_load(ALERTMANAGER_CONFIG.read_text(encoding="utf-8"))["route"]
    assert route["group_by"] == ["alertname", "kind", "severity"]
    assert any('severity = "critical"' in matcher for sub in route["routes"] for matcher in sub.get("matchers", []))
