"""deploy/k8s: every resource of the base and of the example overlay is valid Kubernetes (strict
schemas from kubernetes-validate: unknown fields fail), and describes what an operator relies on:
probes, non-root pods, resources, an HPA and a PDB per service, config from the ConfigMap and
the Secret, a gateway that drains before it stops; and coturn (deploy/k8s/turn, the example's
overlays/example/turn): on the host network, in a namespace of its own, checking credentials with
the same secret the gateways sign them with.

kustomize is not a Python tool, so the overlay is rendered here by a small, deliberately limited
reading of kustomization.yaml (resources, namespace, images, strategic-merge patches that each
name one base resource); any other kustomize feature fails the test rather than being ignored.
Where `kubectl` is installed, `kubectl kustomize` renders both directories too, its output is
validated the same way and must equal this rendering.
"""
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared.settings import Settings
from tests.deploy.support import (
    DOCKERFILE,
    K8S_BASE,
    K8S_OVERLAY,
    K8S_TURN,
    K8S_TURN_OVERLAY,
    PARLEY_VARIABLES,
    RELAY_PORTS,
    ROOT,
    BACKENDS,
    SERVICES,
    TURN_PORT,
    check_coturn_options,
    coturn_options,
    dockerfile_stages,
    load_yaml,
    load_yaml_documents,
)

# The oldest Kubernetes these manifests are meant for (every API they use is GA well before it),
# and the newest the installed kubernetes-validate knows, so that a removed API shows up early.
PINNED_KUBERNETES = "1.30.0"
KUBERNETES_VERSIONS = sorted({PINNED_KUBERNETES, kubernetes_validate.utils.latest_version()})

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CONFIGMAP, SECRET = "parley-config", "parley-secrets"

Resource = dict[str, Any]


# --- rendering ---------------------------------------------------------------------------------
def key(resource: Resource) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


def strategic_merge(target: Any, patch: Any, where: str) -> Any:
    """Kubernetes' strategic merge, as far as these patches need it: maps merge recursively,
    lists of named objects (containers, env, volumes, ports) merge by name, other lists and
    scalars are replaced. Directives ($patch, $setElementOrder, ...) are not supported."""
    if isinstance(patch, dict):
        assert not any(k.startswith("$") for k in patch), f"{where}: strategic-merge directives are not supported here"
        merged = dict(target) if isinstance(target, dict) else {}
        for k, v in patch.items():
            merged[k] = strategic_merge(merged.get(k), v, f"{where}.{k}")
        return merged
    if isinstance(patch, list) and isinstance(target, list) and patch and all(
        isinstance(item, dict) and "name" in item for item in patch + target
    ):
        merged_list = [dict(item) for item in target]
        for item in patch:
            for i, existing in enumerate(merged_list):
                if existing["name"] == item["name"]:
                    merged_list[i] = strategic_merge(existing, item, f"{where}[{item['name']}]")
                    break
            else:
                merged_list.append(item)
        return merged_list
    return copy.deepcopy(patch)


def pod_containers(resource: Resource) -> list[dict[str, Any]]:
    if resource["kind"] not in ("Deployment", "DaemonSet"):
        return []
    spec = resource["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize directory` would print (for what this repository uses)."""
    kustomization = load_yaml(directory / "kustomization.yaml")
    unknown = set(kustomization) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{directory}: kustomization fields {sorted(unknown)} are not rendered by this test; extend render()"
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_yaml_documents(path)
    by_key = {key(r): r for r in resources}
    assert len(by_key) == len(resources), f"{directory}: two resources share a kind and name"
    for patch_entry in kustomization.get("patches", []):
        assert set(patch_entry) == {"path"}, f"{directory}: only `- path: file` strategic-merge patches are rendered here"
        patch = load_yaml(directory / patch_entry["path"])
        target = by_key.get(key(patch))
        assert target is not None, f"{patch_entry['path']}: patches {key(patch)}, which no resource of {directory} is"
        assert patch["apiVersion"] == target["apiVersion"], f"{patch_entry['path']}: apiVersion differs from its target's"
        merged = strategic_merge(target, patch, patch_entry["path"])
        resources[resources.index(target)] = by_key[key(patch)] = merged
    if namespace := kustomization.get("namespace"):
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        used = False
        for resource in resources:
            for container in pod_containers(resource):
                if re.split(r"[:@]", container["image"], maxsplit=1)[0] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
                    used = True
        assert used, f"{directory}: images entry {image['name']} matches no container"
    return resources


@pytest.fixture(scope="module")
def base() -> list[Resource]:
    return render(K8S_BASE)


@pytest.fixture(scope="module")
def overlay() -> list[Resource]:
    return render(K8S_OVERLAY)


@pytest.fixture(scope="module")
def turn_base() -> list[Resource]:
    return render(K8S_TURN)


@pytest.fixture(scope="module")
def turn_overlay() -> list[Resource]:
    return render(K8S_TURN_OVERLAY)


def find(resources: list[Resource], kind: str, name: str) -> Resource:
    matches = [r for r in resources if key(r) == (kind, name)]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


# --- schemas -----------------------------------------------------------------------------------
def validate_all(resources: list[Resource], origin: str) -> None:
    for version in KUBERNETES_VERSIONS:
        for resource in resources:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{origin}: {resource['kind']}/{resource['metadata']['name']} is not valid Kubernetes {version}: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                pytest.fail(f"{origin}: {exc.message}")


def test_base_resources_are_valid_kubernetes(base: list[Resource]) -> None:
    validate_all(base, "deploy/k8s/base")


def test_overlay_resources_are_valid_kubernetes(overlay: list[Resource]) -> None:
    validate_all(overlay, "deploy/k8s/overlays/example")


def test_turn_resources_are_valid_kubernetes(turn_base: list[Resource], turn_overlay: list[Resource]) -> None:
    validate_all(turn_base, "deploy/k8s/turn")
    validate_all(turn_overlay, "deploy/k8s/overlays/example/turn")


def test_the_schema_check_is_strict(base: list[Resource]) -> None:
    """The validation above would catch a misspelt field or a wrong type (it is not lenient)."""
    deployment = copy.deepcopy(find(base, "Deployment", "gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {"httpGet": {"path": "/readyz", "port": 8000}}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, PINNED_KUBERNETES, strict=True)
    hpa = copy.deepcopy(find(base, "HorizontalPodAutoscaler", "gateway"))
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, PINNED_KUBERNETES, strict=True)


@pytest.mark.parametrize("directory", [K8S_BASE, K8S_TURN], ids=["base", "turn"])
def test_every_file_of_the_base_is_in_its_kustomization(directory: Path) -> None:
    listed = {Path(p).name for p in load_yaml(directory / "kustomization.yaml")["resources"]}
    present = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_every_overlay_patch_targets_a_base_resource(base: list[Resource]) -> None:
    kustomization = load_yaml(K8S_OVERLAY / "kustomization.yaml")
    assert "../../base" in kustomization["resources"]
    assert kustomization["patches"], "the example overlay shows how to patch the base"
    for entry in kustomization["patches"]:
        patch = load_yaml(K8S_OVERLAY / entry["path"])
        target = find(base, patch["kind"], patch["metadata"]["name"])
        assert target["apiVersion"] == patch["apiVersion"]


# --- what an operator relies on ----------------------------------------------------------------
@pytest.mark.parametrize("resources_name", ["base", "overlay"])
def test_every_service_has_a_deployment_hpa_and_pdb(resources_name: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(resources_name)
    for service in SERVICES:
        deployment = find(resources, "Deployment", service)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items(), f"{service}: the selector does not select its own pods"
        # The HPA owns the replica count: a `replicas` here would reset it on every apply.
        assert "replicas" not in deployment["spec"], f"{service}: leave replicas to the HPA"
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

        hpa = find(resources, "HorizontalPodAutoscaler", service)
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], f"{service}: at least two replicas"
        assert hpa["spec"]["metrics"], f"{service}: the HPA scales on something"

        pdb = find(resources, "PodDisruptionBudget", service)
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items(), f"{service}: the PDB misses its pods"
        # With minReplicas >= 2, one pod at a time may go: never all of them.
        assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable", 0) >= 1


@pytest.mark.parametrize("resources_name", ["base", "overlay"])
def test_every_pod_is_probed_limited_non_root_and_configured(resources_name: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(resources_name)
    uid = int(re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.M).group(1))  # type: ignore[union-attr]
    config_map, secret = find(resources, "ConfigMap", CONFIGMAP), find(resources, "Secret", SECRET)
    for service in SERVICES:
        deployment = find(resources, "Deployment", service)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid != 0, "the pod's user is the image's (Dockerfile USER)"
        assert pod["automountServiceAccountToken"] is False, "no service needs the Kubernetes API"
        # SIGTERM drains: services within 30 s, gateways after their preStop pause.
        assert pod["terminationGracePeriodSeconds"] >= 40
        (container,) = pod["containers"]
        assert container["name"] == service
        assert container["image"].split("/")[-1].split(":")[0] == service, "each service runs its own image"
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe_name in ("readinessProbe", "livenessProbe"):
            probe = container.get(probe_name)
            assert probe, f"{service}: no {probe_name}"
            port = probe["httpGet"]["port"]
            assert port in port_names or port in port_names.values(), f"{service}: {probe_name} asks a port it does not open"
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys(), f"{service}: resources.{kind}"
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        # Configuration: the shared ConfigMap and Secret, whole, plus what is per service.
        sources = {("configMap", e["configMapRef"]["name"]) if "configMapRef" in e else ("secret", e["secretRef"]["name"]) for e in container["envFrom"]}
        assert sources == {("configMap", CONFIGMAP), ("secret", SECRET)}
        for variable in container.get("env", []):
            assert variable["name"] in PARLEY_VARIABLES, f"{service}: {variable['name']} is no setting of shared/settings.py"
    for name in [*config_map["data"], *secret["stringData"]]:
        assert name in PARLEY_VARIABLES, f"{name} is no setting of shared/settings.py"
    assert not set(config_map["data"]) & set(secret["stringData"])
    assert {"PARLEY_JWT_SECRET", "PARLEY_MONGO_URL", "PARLEY_AMQP_URL", "PARLEY_REDIS_URL"} <= secret["stringData"].keys()


@pytest.mark.parametrize("resources_name", ["base", "overlay"])
def test_probes_ask_what_each_service_serves(resources_name: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(resources_name)
    gateway = find(resources, "Deployment", "gateway")["spec"]["template"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in gateway["env"]}
    assert env["PARLEY_GATEWAY_HOST"] == "0.0.0.0"
    assert int(env["PARLEY_GATEWAY_PORT"]) == {p["name"]: p["containerPort"] for p in gateway["ports"]}["http"]
    # /readyz asks every service with a 4 s limit each (concurrently): the probe waits longer.
    assert gateway["readinessProbe"]["timeoutSeconds"] > 4
    for service in BACKENDS:
        container = find(resources, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert int(env["PARLEY_METRICS_PORT"]) == ports["metrics"], f"{service}: metrics served where probed"
        for probe_name in ("readinessProbe", "livenessProbe"):
            assert container[probe_name]["httpGet"] == {"path": "/metrics", "port": "metrics"}


@pytest.mark.parametrize("resources_name", ["base", "overlay"])
def test_the_gateway_leaves_the_service_before_it_drains(resources_name: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(resources_name)
    pod = find(resources, "Deployment", "gateway")["spec"]["template"]["spec"]
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    assert pause >= 5, "time for kube-proxy and the Ingress controller to stop sending new connections"
    # After the pause: the drain (requests in flight, bounded by the RPC timeout), closing
    # the sockets, then uvicorn's 10 s for HTTP requests; all before the SIGKILL.
    config = find(resources, "ConfigMap", CONFIGMAP)["data"]
    rpc_timeout = float(config.get("PARLEY_RPC_TIMEOUT_SECONDS", 10))
    assert pod["terminationGracePeriodSeconds"] >= pause + rpc_timeout + 10 + 5


@pytest.mark.parametrize("resources_name", ["base", "overlay"])
def test_services_select_pods_and_name_their_ports(resources_name: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(resources_name)
    deployments = [r for r in resources if r["kind"] == "Deployment"]
    services = [r for r in resources if r["kind"] == "Service"]
    assert find(resources, "Service", "gateway")["spec"]["ports"][0]["targetPort"] == "http"
    for service in services:
        selected = [
            d for d in deployments
            if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} deployments"
        container_ports = {p["name"] for p in selected[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports


def test_the_ingress_carries_websockets_and_uploads(overlay: list[Resource]) -> None:
    ingress = find(overlay, "Ingress", "gateway")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 3600, "idle WebSockets are not cut after a minute"
    assert int(annotations[prefix + "proxy-send-timeout"]) >= 3600
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert annotations[prefix + "proxy-buffering"] == "off"
    body_size = annotations[prefix + "proxy-body-size"]
    assert body_size.endswith("m")
    max_upload = int(find(overlay, "ConfigMap", CONFIGMAP)["data"]["PARLEY_MAX_UPLOAD_BYTES"])
    assert int(body_size[:-1]) * 1024 * 1024 >= max_upload, "the Ingress refuses uploads the gateway accepts"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    backend = path["backend"]["service"]
    service = find(overlay, "Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_the_overlay_sets_namespace_and_images(overlay: list[Resource]) -> None:
    kustomization = load_yaml(K8S_OVERLAY / "kustomization.yaml")
    namespace = kustomization["namespace"]
    find(overlay, "Namespace", namespace)
    for resource in overlay:
        if resource["kind"] not in CLUSTER_SCOPED:
            assert resource["metadata"]["namespace"] == namespace
    for service in SERVICES:
        image = find(overlay, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.fullmatch(rf"[\w.\-/]+/{service}:[\w.\-]+", image), f"{service}: {image} is not a tagged image"


def test_every_image_is_a_stage_of_the_dockerfile(base: list[Resource]) -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    for service in SERVICES:
        image = find(base, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"parley/{service}", "the base names the images the Dockerfile's targets build"
        assert service in stages


# --- coturn --------------------------------------------------------------------------------------
def coturn_pod(resources: list[Resource]) -> dict[str, Any]:
    daemonset = find(resources, "DaemonSet", "coturn")
    labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= labels.items()
    spec: dict[str, Any] = daemonset["spec"]["template"]["spec"]
    return spec


def expanded_args(container: dict[str, Any]) -> list[str]:
    """The container's args with Kubernetes' $(VAR) expansion of its literal env values (a
    secretKeyRef stays `$(NAME)`)."""
    values = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return [re.sub(r"\$\((\w+)\)", lambda m: values.get(m.group(1), m.group(0)), arg) for arg in container["args"]]


@pytest.mark.parametrize("resources_name", ["turn_base", "turn_overlay"])
def test_coturn_runs_on_the_host_network_unprivileged(resources_name: str, request: pytest.FixtureRequest) -> None:
    resources: list[Resource] = request.getfixturevalue(resources_name)
    pod = coturn_pod(resources)
    # Relay ports are handed to clients as the node's address and port: no Service, no NAT between.
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert pod["nodeSelector"] == {"parley/turn": "true"}, "on the nodes chosen (and firewalled) for TURN only"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert re.fullmatch(r"coturn/coturn:[\w.\-]+", container["image"]), "a pinned coturn image"
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {(p["containerPort"], p["hostPort"], p["protocol"]) for p in container["ports"]} == {
        (TURN_PORT, TURN_PORT, "UDP"), (TURN_PORT, TURN_PORT, "TCP")
    }
    for probe_name in ("readinessProbe", "livenessProbe"):
        port = container[probe_name]["tcpSocket"]["port"]
        assert port in {p["name"] for p in container["ports"] if p["protocol"] == "TCP"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][kind].keys()
    options = coturn_options(expanded_args(container))
    check_coturn_options(options, f"{resources_name} coturn")
    # Writable places only on emptyDirs (the root filesystem is read-only).
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    for option in ("--pidfile", "--userdb"):
        assert any(options[option][0].startswith(m + "/") for m in mounts), f"{option} on a mounted volume"


@pytest.mark.parametrize(("parley_name", "turn_name"), [("base", "turn_base"), ("overlay", "turn_overlay")])
def test_coturn_checks_credentials_with_the_gateways_secret(parley_name: str, turn_name: str, request: pytest.FixtureRequest) -> None:
    parley: list[Resource] = request.getfixturevalue(parley_name)
    turn: list[Resource] = request.getfixturevalue(turn_name)
    (container,) = coturn_pod(turn)["containers"]
    options = coturn_options(expanded_args(container))
    assert options["--static-auth-secret"] == ["$(PARLEY_TURN_SECRET)"]
    (variable,) = [e for e in container["env"] if e["name"] == "PARLEY_TURN_SECRET"]
    reference = variable["valueFrom"]["secretKeyRef"]
    coturn_secret = find(turn, "Secret", reference["name"])
    assert coturn_secret["metadata"].get("namespace") == find(turn, "DaemonSet", "coturn")["metadata"].get("namespace")
    # The gateways sign with parley-secrets' PARLEY_TURN_SECRET (envFrom, checked above): the
    # same key, and in these examples the same (placeholder) value.
    gateway_secret = find(parley, "Secret", SECRET)["stringData"]
    assert coturn_secret["stringData"][reference["key"]] == gateway_secret["PARLEY_TURN_SECRET"]
    assert reference["key"] == "PARLEY_TURN_SECRET"


def test_coturn_has_a_namespace_of_its_own_that_admits_host_networking(overlay: list[Resource], turn_overlay: list[Resource]) -> None:
    parley_namespace = load_yaml(K8S_OVERLAY / "kustomization.yaml")["namespace"]
    turn_namespace = load_yaml(K8S_TURN_OVERLAY / "kustomization.yaml")["namespace"]
    assert turn_namespace != parley_namespace
    enforce = "pod-security.kubernetes.io/enforce"
    assert find(overlay, "Namespace", parley_namespace)["metadata"]["labels"][enforce] == "restricted"
    # baseline and restricted both refuse hostNetwork: coturn's namespace must be privileged.
    assert find(turn_overlay, "Namespace", turn_namespace)["metadata"]["labels"][enforce] == "privileged"
    assert [r["kind"] for r in turn_overlay if r["kind"] not in CLUSTER_SCOPED] == ["Secret", "DaemonSet"], "nothing else there"
    for resource in turn_overlay:
        if resource["kind"] not in CLUSTER_SCOPED:
            assert resource["metadata"]["namespace"] == turn_namespace


def test_the_example_gateways_hand_out_its_coturn(overlay: list[Resource], turn_overlay: list[Resource]) -> None:
    config = find(overlay, "ConfigMap", CONFIGMAP)["data"]
    settings = Settings(
        stun_urls=json.loads(config["PARLEY_STUN_URLS"]), turn_urls=json.loads(config["PARLEY_TURN_URLS"]),
        turn_credential_ttl_seconds=int(config["PARLEY_TURN_CREDENTIAL_TTL_SECONDS"]),
    )
    (container,) = coturn_pod(turn_overlay)["containers"]
    (realm,) = coturn_options(expanded_args(container))["--realm"]
    assert settings.stun_urls == [f"stun:{realm}:{TURN_PORT}"]
    assert settings.turn_urls == [f"turn:{realm}:{TURN_PORT}?transport=udp", f"turn:{realm}:{TURN_PORT}?transport=tcp"]
    assert RELAY_PORTS[0] < RELAY_PORTS[1]


# --- kubectl kustomize, when it is there ---------------------------------------------------------
@pytest.mark.parametrize(
    "directory", [K8S_BASE, K8S_OVERLAY, K8S_TURN, K8S_TURN_OVERLAY], ids=["base", "overlay", "turn", "turn-overlay"]
)
def test_kubectl_kustomize_renders_the_same(directory: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: `kubectl kustomize` not run (the Python rendering above was checked)")
    result = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    validate_all(rendered, f"kubectl kustomize {directory.relative_to(ROOT)}")
    ours = {key(r): r for r in render(directory)}
    theirs = {key(r): r for r in rendered}
    assert theirs.keys() == ours.keys()
    for k in ours:
        assert theirs[k] == ours[k], f"{k}: kubectl kustomize and this test's rendering differ"
