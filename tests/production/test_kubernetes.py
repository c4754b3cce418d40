"""deploy/kubernetes: valid for a pinned Kubernetes version and KEDA's CRD schemas, and consistent with the
project (.env.example, docker-compose.yml, the settings' queue naming)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.fixtures.worker import ROOT

pytestmark = pytest.mark.smoke

MANIFESTS = ROOT / "deploy" / "kubernetes"
# A Kubernetes release still in support; kubernetes-validate ships its API schemas (no network).
KUBERNETES_VERSION = "1.33.0"
IMAGE_PLACEHOLDER = "wxplatform:latest"  # the README's deploy commands replace it with the release's image
KEDA_ONLY_KEYS = {"KEDA_REDIS_ADDRESS", "KEDA_REDIS_PASSWORD"}


def documents() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def one(kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def compose(service: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]  # type: ignore[no-any-return]


# --- Schemas ---------------------------------------------------------------------------------------------


def test_every_kubernetes_object_validates_strictly_against_the_pinned_version() -> None:
    core = [d for d in documents() if not d["apiVersion"].startswith("keda.sh/")]
    assert sorted(d["kind"] for d in core) == sorted(
        ["ConfigMap", "Secret", "Deployment", "Deployment", "Deployment", "Service", "HorizontalPodAutoscaler",
         "Job", "PodDisruptionBudget", "PodDisruptionBudget"]
    )  # fmt: skip
    for doc in core:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_validation_refuses_a_misspelt_field() -> None:
    # The control: strict validation is what catches a typo the API server would silently drop.
    web = copy.deepcopy(one("Deployment", "wxplatform-web"))
    container = web["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, KUBERNETES_VERSION, strict=True)


def keda_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((MANIFESTS / "schemas" / f"keda-{kind.lower()}-v1alpha1.json").read_text())

    def strict(node: Any) -> None:
        # The API server prunes (kubectl --validate=strict refuses) fields the CRD does not declare.
        if isinstance(node, dict):
            if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
                node.setdefault("additionalProperties", False)
            for value in node.values():
                strict(value)
        elif isinstance(node, list):
            for value in node:
                strict(value)

    strict(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("kind", ["ScaledObject", "TriggerAuthentication"])
def test_keda_objects_validate_against_kedas_crd_schema(kind: str) -> None:
    [doc] = [d for d in documents() if d["kind"] == kind]
    assert doc["apiVersion"] == "keda.sh/v1alpha1"
    errors = [e.message for e in keda_validator(kind).iter_errors(doc)]
    assert errors == []


def test_the_keda_validation_refuses_a_misspelt_field() -> None:
    scaled = copy.deepcopy(one("ScaledObject", "wxplatform-worker"))
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    assert not keda_validator("ScaledObject").is_valid(scaled)


# --- Consistency with the project ------------------------------------------------------------------------


def env_example_names() -> set[str]:
    """Every variable .env.example sets, but those of its docker-compose-only section."""
    names, section = set(), ""
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("# ---"):
            section = line
        elif (match := re.match(r"([A-Z][A-Z0-9_]*)=", line)) and "docker-compose only" not in section:
            names.add(match.group(1))
    return names


def test_configmap_and_secret_hold_every_variable_of_env_example_once() -> None:
    config = one("ConfigMap", "wxplatform-config")["data"]
    secrets = one("Secret", "wxplatform-secrets")["stringData"]
    names = env_example_names()
    assert len(names) > 90 and "WORKER_LIVENESS_MAX_AGE" in names
    assert names - set(config) - set(secrets) == set()
    assert set(config) & set(secrets) == set()
    assert set(config) | set(secrets) == names | KEDA_ONLY_KEYS  # nothing misspelt or stale
    # Whatever holds a password, key or token is in the Secret, and the template holds no value of one.
    assert {
        "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL", "WECHAT_COMPONENT_APPSECRET",
        "WECHAT_COMPONENT_TOKEN", "WECHAT_COMPONENT_AES_KEY", "WECHAT_HTTP_PROXY", "WECHAT_TOKEN_AUTHORITY_KEY",
        "METRICS_TOKEN", "REDIS_SENTINEL_PASSWORD",
    } | KEDA_ONLY_KEYS == set(secrets)  # fmt: skip
    assert {k: v for k, v in secrets.items() if v and k != "KEDA_REDIS_ADDRESS"} == {}


def settings_with(config: dict[str, str], tmp_path: Path, expression: str) -> str:
    """`expression` evaluated in a process whose settings come from the ConfigMap (secrets filled in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_", "DATABASE_"))}
    env.update(config)
    env.update(
        SECRET_KEY="k" * 50, TOKEN_ENCRYPTION_KEYS="dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
        WECHAT_COMPONENT_APPID="wx0000000000000000", WECHAT_COMPONENT_APPSECRET="s", WECHAT_COMPONENT_TOKEN="t",
        WECHAT_COMPONENT_AES_KEY="a" * 43, DATABASE_URL="postgres://wxplatform:p@postgres.invalid:5432/wxplatform",
        REDIS_URL="redis://redis.invalid:6379/0",
        # The pods' paths do not exist here.
        VAR_DIR=str(tmp_path / "var"), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )  # fmt: skip
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    answer = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert answer.returncode == 0, answer.stderr[-3000:]
    return answer.stdout.strip()


def test_the_configmap_is_accepted_by_the_settings_and_keda_watches_the_queue_they_name(tmp_path: Path) -> None:
    config = one("ConfigMap", "wxplatform-config")["data"]
    queue_key = settings_with(
        config,
        tmp_path,
        "settings.CELERY_BROKER_TRANSPORT_OPTIONS['global_keyprefix'] + settings.CELERY_TASK_DEFAULT_QUEUE",
    )
    [trigger] = one("ScaledObject", "wxplatform-worker")["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == queue_key == "wxp:wxp-default"


def test_keda_scales_the_worker_with_the_secrets_keys() -> None:
    scaled = one("ScaledObject", "wxplatform-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == one("Deployment", "wxplatform-worker")["metadata"]["name"]
    auth = one("TriggerAuthentication", scaled["triggers"][0]["authenticationRef"]["name"])["spec"]
    secret = one("Secret", "wxplatform-secrets")
    assert {(r["name"], r["key"]) for r in auth["secretTargetRef"]} == {
        (secret["metadata"]["name"], key) for key in KEDA_ONLY_KEYS
    }
    # KEDA owns the worker's replica count: no HorizontalPodAutoscaler of ours may compete with it.
    assert [d["spec"]["scaleTargetRef"]["name"] for d in documents() if d["kind"] == "HorizontalPodAutoscaler"] == [
        "wxplatform-web"
    ]


def test_the_worker_runs_as_compose_runs_it_and_is_probed_for_progress() -> None:
    [worker] = one("Deployment", "wxplatform-worker")["spec"]["template"]["spec"]["containers"]
    assert worker["command"] == compose("worker")["command"]
    assert worker["livenessProbe"]["exec"]["command"] == ["python", "manage.py", "worker_alive"]
    assert compose("worker")["healthcheck"]["test"] == ["CMD", *worker["livenessProbe"]["exec"]["command"]]
    # The probe has the time to boot Django and wait for its ping (2 s).
    assert worker["livenessProbe"]["timeoutSeconds"] >= 10


def test_web_is_probed_on_readyz_and_healthz_and_scaled_on_cpu() -> None:
    [web] = one("Deployment", "wxplatform-web")["spec"]["template"]["spec"]["containers"]
    assert "command" not in web  # the image's gunicorn command, as compose runs it
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    [metric] = one("HorizontalPodAutoscaler", "wxplatform-web")["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_beat_is_one_pod_that_is_never_two() -> None:
    beat = one("Deployment", "wxplatform-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"] == compose("beat")["command"]
    assert not [d for d in documents() if d["kind"] in {"HorizontalPodAutoscaler", "ScaledObject"}
                and d["spec"]["scaleTargetRef"]["name"] == "wxplatform-beat"]  # fmt: skip


def test_migrations_run_as_a_job_and_gate_every_new_pod() -> None:
    job = one("Job", "wxplatform-migrate")
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == compose("migrate")["command"]
    for name in ("wxplatform-web", "wxplatform-worker", "wxplatform-beat"):
        [init] = one("Deployment", name)["spec"]["template"]["spec"]["initContainers"]
        assert init["command"] == ["python", "manage.py", "migrate", "--check"]


def test_every_pod_has_requests_the_config_the_placeholder_image_and_its_disruption_budget() -> None:
    workloads = [d for d in documents() if d["kind"] in {"Deployment", "Job"}]
    for doc in workloads:
        for container in containers(doc):
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), container["name"]
            assert "memory" in container["resources"]["limits"], container["name"]
            assert container["image"] == IMAGE_PLACEHOLDER
            assert [next(iter(ref.values()))["name"] for ref in container["envFrom"]] == [
                "wxplatform-config",
                "wxplatform-secrets",
            ]
    budgets = {d["metadata"]["name"]: d["spec"]["selector"]["matchLabels"] for d in documents()
               if d["kind"] == "PodDisruptionBudget"}  # fmt: skip
    for name in ("wxplatform-web", "wxplatform-worker"):
        deployment = one("Deployment", name)
        assert budgets[name] == deployment["spec"]["selector"]["matchLabels"]
        assert deployment["spec"]["template"]["metadata"]["labels"] == budgets[name]
