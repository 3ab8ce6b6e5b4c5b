"""deploy/k8s/overlays/clustered: Parley on clustered engines (a RabbitmqCluster of 3, a Redis
Cluster of 6, a MongoDBCommunity replica set of 3), each engine in its own directory and
namespace. Built-in resources are checked like the other manifests (kubernetes-validate, strict);
the two operators' resources, which kubernetes-validate does not know, against a schema of our
own made from their published CRDs' fields (the fields used here and their neighbours; unknown
fields fail, as with the strict check). Then what ties them together: Parley's URLs name the
pods, Service, replica set, users and ports these resources create, and its settings are the
ones a clustered engine needs."""
import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml

from shared.settings import Settings
from shared.stores import mongo_client
from tests.deploy.support import K8S_OVERLAY, PARLEY_VARIABLES, ROOT
from tests.deploy.test_manifests import (
    CONFIGMAP,
    SECRET,
    Resource,
    find,
    key,
    render,
    validate_all,
)
from tests.deploy import test_manifests as manifests

CLUSTERED = K8S_OVERLAY.parent / "clustered"
ENGINES = {"rabbitmq": CLUSTERED / "rabbitmq", "redis": CLUSTERED / "redis", "mongodb": CLUSTERED / "mongodb"}
DIRECTORIES = {"clustered": CLUSTERED, **ENGINES}

_OBJECT = {"type": "object"}
_RESOURCES = {"type": "object", "additionalProperties": False, "properties": {"limits": _OBJECT, "requests": _OBJECT}}
_METADATA = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}}

# rabbitmq.com/v1beta1 RabbitmqCluster (github.com/rabbitmq/cluster-operator, config/crd).
RABBITMQ_CLUSTER = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "rabbitmq.com/v1beta1"}, "kind": {"const": "RabbitmqCluster"}, "metadata": _METADATA,
        "spec": {"type": "object", "additionalProperties": False, "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "image": {"type": "string"},
            "imagePullSecrets": {"type": "array"},
            "service": {"type": "object", "additionalProperties": False, "properties": {
                "type": {"enum": ["ClusterIP", "LoadBalancer", "NodePort"]}, "annotations": _OBJECT, "ipFamilyPolicy": {"type": "string"},
            }},
            "persistence": {"type": "object", "additionalProperties": False, "properties": {
                "storageClassName": {"type": "string"}, "storage": {"type": ["string", "integer"]},
            }},
            "resources": _RESOURCES,
            "affinity": _OBJECT, "tolerations": {"type": "array"},
            "rabbitmq": {"type": "object", "additionalProperties": False, "properties": {
                "additionalPlugins": {"type": "array", "items": {"type": "string"}},
                "additionalConfig": {"type": "string", "maxLength": 100000},
                "advancedConfig": {"type": "string"}, "envConfig": {"type": "string"}, "erlangInetConfig": {"type": "string"},
            }},
            "tls": _OBJECT, "override": _OBJECT, "secretBackend": _OBJECT,
            "skipPostDeployChecks": {"type": "boolean"}, "autoEnableAllFeatureFlags": {"type": "boolean"},
            "terminationGracePeriodSeconds": {"type": "integer", "minimum": 0}, "delayStartSeconds": {"type": "integer", "minimum": 0},
        }},
    },
}

# mongodbcommunity.mongodb.com/v1 MongoDBCommunity (github.com/mongodb/mongodb-kubernetes-operator, config/crd).
MONGODB_COMMUNITY = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"], "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "mongodbcommunity.mongodb.com/v1"}, "kind": {"const": "MongoDBCommunity"}, "metadata": _METADATA,
        "spec": {"type": "object", "required": ["security", "type", "users"], "additionalProperties": False, "properties": {
            "members": {"type": "integer"}, "arbiters": {"type": "integer"},
            "type": {"enum": ["ReplicaSet"]},
            "version": {"type": "string"}, "featureCompatibilityVersion": {"type": "string"},
            "security": {"type": "object", "additionalProperties": False, "properties": {
                "authentication": {"type": "object", "additionalProperties": False, "properties": {
                    "modes": {"type": "array", "items": {"enum": ["SCRAM", "SCRAM-SHA-256", "SCRAM-SHA-1", "X509"]}},
                    "ignoreUnknownUsers": {"type": "boolean"}, "agentMode": {"type": "string"}, "agentCertificateSecretRef": _OBJECT,
                }},
                "tls": _OBJECT, "roles": {"type": "array"},
            }},
            "users": {"type": "array", "items": {
                "type": "object", "required": ["name", "db", "passwordSecretRef", "roles", "scramCredentialsSecretName"],
                "additionalProperties": False, "properties": {
                    "name": {"type": "string"}, "db": {"type": "string"},
                    "passwordSecretRef": {"type": "object", "required": ["name"], "additionalProperties": False,
                                          "properties": {"name": {"type": "string"}, "key": {"type": "string"}}},
                    "roles": {"type": "array", "items": {"type": "object", "required": ["name", "db"], "additionalProperties": False,
                                                         "properties": {"name": {"type": "string"}, "db": {"type": "string"}}}},
                    "scramCredentialsSecretName": {"type": "string", "pattern": "^[a-z0-9-.]+$"},
                    "connectionStringSecretName": {"type": "string"}, "connectionStringSecretNamespace": {"type": "string"},
                    "connectionStringSecretAnnotations": _OBJECT, "additionalConnectionStringConfig": _OBJECT,
                },
            }},
            "additionalMongodConfig": _OBJECT, "additionalConnectionStringConfig": _OBJECT, "statefulSet": _OBJECT,
            "replicaSetHorizons": {"type": "array"}, "automationConfig": _OBJECT, "prometheus": _OBJECT, "memberConfig": {"type": "array"},
        }},
    },
}
CUSTOM_SCHEMAS = {"RabbitmqCluster": RABBITMQ_CLUSTER, "MongoDBCommunity": MONGODB_COMMUNITY}


def validate_with_operators(resources: list[Resource], origin: str) -> None:
    """Built-in kinds by kubernetes-validate (strict); the operators' kinds by CUSTOM_SCHEMAS."""
    validate_all([r for r in resources if r["kind"] not in CUSTOM_SCHEMAS], origin)
    for resource in resources:
        if schema := CUSTOM_SCHEMAS.get(resource["kind"]):
            try:
                jsonschema.validate(resource, schema)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{origin}: {resource['kind']}/{resource['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Resource]]:
    return {name: render(directory) for name, directory in DIRECTORIES.items()}


@pytest.fixture(scope="module")
def clustered(rendered: dict[str, list[Resource]]) -> list[Resource]:
    return rendered["clustered"]


@pytest.fixture(scope="module")
def parley_settings(clustered: list[Resource]) -> Settings:
    """Settings as a Parley pod reads them from the overlay's ConfigMap and Secret."""
    values = {**find(clustered, "ConfigMap", CONFIGMAP)["data"], **find(clustered, "Secret", SECRET)["stringData"]}
    unknown = set(values) - PARLEY_VARIABLES
    assert not unknown, f"{sorted(unknown)}: no setting of shared/settings.py"
    with pytest.MonkeyPatch.context() as env:  # read as a pod reads them: from its environment
        for name in PARLEY_VARIABLES:
            env.delenv(name, raising=False)
        for name, value in values.items():
            env.setenv(name, value)
        return Settings()


@pytest.mark.parametrize("name", list(DIRECTORIES))
def test_every_resource_is_valid(name: str, rendered: dict[str, list[Resource]]) -> None:
    validate_with_operators(rendered[name], str(DIRECTORIES[name].relative_to(ROOT)))


def test_the_operator_schemas_are_strict(rendered: dict[str, list[Resource]]) -> None:
    rabbit = copy.deepcopy(find(rendered["rabbitmq"], "RabbitmqCluster", "parley-rabbitmq"))
    rabbit["spec"]["replica"] = 3
    with pytest.raises(jsonschema.ValidationError, match="replica"):
        jsonschema.validate(rabbit, RABBITMQ_CLUSTER)
    mongo = copy.deepcopy(find(rendered["mongodb"], "MongoDBCommunity", "parley-mongodb"))
    mongo["spec"]["users"][0]["roles"] = [{"name": "readWrite"}]
    with pytest.raises(jsonschema.ValidationError, match="db"):
        jsonschema.validate(mongo, MONGODB_COMMUNITY)


def test_parley_is_the_example_with_the_settings_of_clustered_engines(clustered: list[Resource], parley_settings: Settings,
                                                                       request: pytest.FixtureRequest) -> None:
    # What the base and the example are held to (test_manifests.py), held here too.
    manifests.test_every_service_has_a_deployment_hpa_and_pdb("clustered", request)
    manifests.test_every_pod_is_probed_limited_non_root_and_configured("clustered", request)
    assert {key(r) for r in render(K8S_OVERLAY)} == {key(r) for r in clustered}, "the example, patched: nothing more or less"
    assert parley_settings.queue_type == "quorum"
    assert parley_settings.redis_cluster is True
    assert parley_settings.mongo_write_concern == "majority"
    assert mongo_client(parley_settings).write_concern.document["w"] == "majority"


def engine(rendered: dict[str, list[Resource]], name: str, kind: str) -> tuple[Resource, str]:
    [resource] = [r for r in rendered[name] if r["kind"] == kind]
    return resource, resource["metadata"]["namespace"]


def test_the_mongo_url_names_the_replica_set_its_members_and_user(rendered: dict[str, list[Resource]], parley_settings: Settings) -> None:
    mongodb, namespace = engine(rendered, "mongodb", "MongoDBCommunity")
    name, spec = mongodb["metadata"]["name"], mongodb["spec"]
    assert spec["type"] == "ReplicaSet" and spec["members"] >= 3 and spec["members"] % 2 == 1
    url = urlsplit(parley_settings.mongo_url)
    options = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert options["replicaSet"] == name
    hosts = url.netloc.rsplit("@", 1)[1].split(",")
    assert hosts == [f"{name}-{i}.{name}-svc.{namespace}.svc.cluster.local:27017" for i in range(spec["members"])]
    [user] = [u for u in spec["users"] if u["name"] == url.username]
    assert user["db"] == options["authSource"]
    assert {"name": "readWrite", "db": parley_settings.mongo_db} in user["roles"]
    password = find(rendered["mongodb"], "Secret", user["passwordSecretRef"]["name"])
    assert password["stringData"]["password"] == url.password


def test_the_amqp_urls_name_every_rabbitmq_node(rendered: dict[str, list[Resource]], parley_settings: Settings) -> None:
    cluster, namespace = engine(rendered, "rabbitmq", "RabbitmqCluster")
    name, replicas = cluster["metadata"]["name"], cluster["spec"]["replicas"]
    assert replicas >= 3 and replicas % 2 == 1, "quorum queues keep working with a majority up"
    urls = [urlsplit(u) for u in parley_settings.amqp_url.split(",")]
    assert [u.hostname for u in urls] == [f"{name}-server-{i}.{name}-nodes.{namespace}.svc.cluster.local" for i in range(replicas)]
    config = dict(line.split(" = ", 1) for line in cluster["spec"]["rabbitmq"]["additionalConfig"].splitlines() if " = " in line)
    assert {(u.username, u.password, u.port) for u in urls} == {(config["default_user"], config["default_pass"], 5672)}
    pdb = find(rendered["rabbitmq"], "PodDisruptionBudget", name)
    assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": name}


def test_the_redis_url_is_a_seed_node_of_a_six_node_cluster(rendered: dict[str, list[Resource]], parley_settings: Settings) -> None:
    nodes, namespace = engine(rendered, "redis", "StatefulSet")
    name, replicas, service = nodes["metadata"]["name"], nodes["spec"]["replicas"], nodes["spec"]["serviceName"]
    assert replicas == 6, "three primaries, each with a replica"
    assert find(rendered["redis"], "Service", service)["spec"]["clusterIP"] == "None"
    url = urlsplit(parley_settings.redis_url)
    assert re.fullmatch(rf"{name}-[0-5]\.{service}\.{namespace}\.svc\.cluster\.local", url.hostname or "")
    assert url.port == 6379 and url.path in ("", "/0"), "a cluster has database 0 only"
    assert find(rendered["redis"], "Secret", "parley-redis")["stringData"]["password"] == url.password
    config = find(rendered["redis"], "ConfigMap", name)["data"]["redis.conf"]
    assert "cluster-enabled yes" in config and "appendonly yes" in config
    (container,) = nodes["spec"]["template"]["spec"]["containers"]
    assert container["args"][container["args"].index("--requirepass") + 1] == "$(REDIS_PASSWORD)"
    job = find(rendered["redis"], "Job", f"{name}-create-cluster")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert f"for n in {' '.join(map(str, range(replicas)))}; do" in script
    assert "--cluster-replicas 1" in script
    assert f"{name}-$n.{service}.{namespace}.svc.cluster.local" in script


@pytest.mark.parametrize("name", list(DIRECTORIES))
def test_kubectl_kustomize_renders_the_same(name: str, rendered: dict[str, list[Resource]]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` not run (the Python rendering above was checked)")
    directory: Path = DIRECTORIES[name]
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    theirs = {key(r): r for r in yaml.safe_load_all(result.stdout) if r}
    ours: dict[tuple[str, str], Any] = {key(r): r for r in rendered[name]}
    assert theirs == ours, f"{directory}: kubectl kustomize and this test's rendering differ"
