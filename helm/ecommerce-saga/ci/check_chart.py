"""Renders the chart in every supported shape and asserts what the manifests must hold.

Run by scripts/helm-check.sh, which then validates the files written here: every Kubernetes
manifest with kubernetes-validate --strict (OUT/native/*.yaml) and every Route with the Route CRD
schema (OUT/routes/*.json). With --compose, also checks that compose.yaml wires the split topology
like the chart (names, ports, SHOP_MODULES, URLs, tokens without defaults).

    python check_chart.py --helm .tools/bin/helm --chart helm/ecommerce-saga --out .cache/helm-check
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

MODULES = ("order", "inventory", "payment", "shipping", "notification")
SPLIT_PORTS = {"order": 8000, "inventory": 8001, "payment": 8002, "shipping": 8003, "notification": 8004}
OPENSHIFT = ["--api-versions", "route.openshift.io/v1", "--api-versions", "monitoring.coreos.com/v1"]
EXTERNAL_URL = ["--set", "mongodb.enabled=false", "--set", "externalMongodb.url=mongodb://db.example:27017"]
EXTERNAL_SECRET = [
    "--set", "mongodb.enabled=false",
    "--set", "externalMongodb.existingSecret=shop-mongodb",
    "--set", "externalMongodb.existingSecretKey=url",
]  # fmt: skip
SPLIT = ["--set", "topology=split"]
SERVICE_MONITOR = ["--set", "metrics.serviceMonitor.enabled=true"]


@dataclass
class Scenario:
    """One `helm template` and the facts its manifests must show."""

    name: str
    args: list[str]
    split: bool = False
    openshift: bool = False
    in_chart_db: bool = True
    checks: list[Callable[[list[Manifest]], None]] = field(default_factory=list)


class ChartCheckError(AssertionError):
    """A rendered manifest is not what the chart promises."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ChartCheckError(message)


def render(helm: str, chart: Path, args: list[str], release: str = "shop") -> list[Manifest]:
    command = [helm, "template", release, str(chart), "--namespace", "shop", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise ChartCheckError(f"helm template {' '.join(args)} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_fails(helm: str, chart: Path, args: list[str], pattern: str) -> None:
    command = [helm, "template", "shop", str(chart), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    expect(result.returncode != 0, f"helm template {' '.join(args)} should fail")
    expect(re.search(pattern, result.stderr) is not None, f"unexpected error for {args}: {result.stderr}")


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: list[Manifest], kind: str, name: str) -> Manifest:
    for doc in of_kind(docs, kind):
        if doc["metadata"]["name"] == name:
            return doc
    raise ChartCheckError(f"no {kind} named {name}")


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]


def env_of(deployment: Manifest) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def secret_value(docs: list[Manifest], name: str, key: str) -> str:
    return base64.b64decode(named(docs, "Secret", name)["data"][key]).decode()


# --- checks that hold in every scenario ----------------------------------------------------------


def check_security(docs: list[Manifest]) -> None:
    for where, spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        expect(pod.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
        expect(pod.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{where}: seccomp RuntimeDefault")
        expect("runAsUser" not in pod, f"{where}: runAsUser is hard-coded (OpenShift assigns one)")
        for container in spec["containers"]:
            ctx = container.get("securityContext", {})
            expect(ctx.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation")
            expect(ctx.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
            expect(ctx.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL capabilities")
            expect("runAsUser" not in ctx, f"{where}: runAsUser is hard-coded")
            expect("resources" in container, f"{where}: resources")


def check_app_pods(docs: list[Manifest]) -> None:
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        env = env_of(deployment)
        port = container["ports"][0]["containerPort"]
        expect(env["SHOP_PORT"] == str(port), f"{name}: SHOP_PORT matches the container port")
        expect(env["SHOP_HOST"] == "0.0.0.0", f"{name}: SHOP_HOST")  # noqa: S104
        expect(env["SHOP_WORKER_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}, f"{name}: worker id")
        for secret_env in ("SHOP_MONGODB_URL", "SHOP_SERVICE_TOKEN", "SHOP_ADMIN_TOKEN"):
            expect("secretKeyRef" in env[secret_env], f"{name}: {secret_env} comes from a Secret")
        expect(container["startupProbe"]["httpGet"]["path"] == "/healthz", f"{name}: startup probe")
        expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness probe")
        expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness probe")
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        expect({"/tmp", "/var/lib/ecommerce-saga"} <= mounts, f"{name}: writable /tmp and data dir")  # noqa: S108
        annotations = template["metadata"]["annotations"]
        expect(annotations.get("prometheus.io/scrape") == "true", f"{name}: prometheus.io/scrape")
        expect(annotations.get("prometheus.io/path") == "/metrics", f"{name}: prometheus.io/path")
        expect(annotations.get("prometheus.io/port") == str(port), f"{name}: prometheus.io/port")
        labels = template["metadata"]["labels"]
        for label in ("name", "instance", "component", "version", "part-of", "managed-by"):
            expect(f"app.kubernetes.io/{label}" in labels, f"{name}: label app.kubernetes.io/{label}")
        service = named(docs, "Service", name)
        expect(service["spec"]["ports"][0]["port"] == port, f"{name}: Service port = container port")


def check_secrets(docs: list[Manifest]) -> None:
    for secret in of_kind(docs, "Secret"):
        keep = secret["metadata"].get("annotations", {}).get("helm.sh/resource-policy")
        expect(keep == "keep", f"Secret/{secret['metadata']['name']}: helm.sh/resource-policy: keep")


def check_routes(scenario: Scenario, docs: list[Manifest]) -> None:
    routes = of_kind(docs, "Route")
    if not scenario.openshift:
        expect(not routes, f"{scenario.name}: Routes rendered without route.openshift.io/v1")
        expect(not of_kind(docs, "ServiceMonitor"), f"{scenario.name}: ServiceMonitor without the API")
        return
    public = "order-svc" if scenario.split else "shop-ecommerce-saga"
    main = named(docs, "Route", "shop-ecommerce-saga")
    expect(
        main["spec"]["to"] == {"kind": "Service", "name": public, "weight": 100}, "Route to the public API"
    )
    expect(len(routes) == (5 if scenario.split else 1), f"{scenario.name}: number of Routes")
    for route in routes:
        spec = route["spec"]
        tls = spec["tls"]
        expect(tls == {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"}, "Route TLS")
        expect(spec["wildcardPolicy"] == "None", "Route wildcardPolicy rendered explicitly")


def check_mongodb(scenario: Scenario, docs: list[Manifest]) -> None:
    statefulsets = of_kind(docs, "StatefulSet")
    if not scenario.in_chart_db:
        expect(not statefulsets, f"{scenario.name}: no in-chart MongoDB with an external one")
        return
    mongodb = named(docs, "StatefulSet", "shop-ecommerce-saga-mongodb")
    expect(mongodb["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data", "MongoDB PVC")
    service = named(docs, "Service", "shop-ecommerce-saga-mongodb")
    expect(service["spec"]["clusterIP"] == "None", "MongoDB Service is headless")
    url = secret_value(docs, "shop-ecommerce-saga-mongodb", "mongodb-url")
    password = secret_value(docs, "shop-ecommerce-saga-mongodb", "mongodb-root-password")
    expect(url == f"mongodb://root:{password}@shop-ecommerce-saga-mongodb:27017/?authSource=admin", url)
    policy = named(docs, "NetworkPolicy", "shop-ecommerce-saga-mongodb")
    peers = policy["spec"]["ingress"][0]["from"]
    expect(len(peers) == 1 and "podSelector" in peers[0], "MongoDB accepts only pods of the release")
    components = peers[0]["podSelector"]["matchExpressions"][0]["values"]
    expect("mongodb" not in components and "order" in components, "MongoDB accepts only the app pods")


def check_topology(scenario: Scenario, docs: list[Manifest]) -> None:
    deployments = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Deployment")}
    if not scenario.split:
        expect(list(deployments) == ["shop-ecommerce-saga"], f"monolith Deployments: {list(deployments)}")
        env = env_of(deployments["shop-ecommerce-saga"])
        expect(env["SHOP_MODULES"] == ",".join(MODULES), "the monolith hosts every module")
        expect(not any(key.endswith("_URL") and key != "SHOP_MONGODB_URL" for key in env), "no module URLs")
        return
    expect(
        sorted(deployments) == sorted(f"{m}-svc" for m in MODULES), f"split Deployments: {list(deployments)}"
    )
    for module in MODULES:
        env = env_of(deployments[f"{module}-svc"])
        expect(env["SHOP_MODULES"] == module, f"{module}-svc: SHOP_MODULES={env['SHOP_MODULES']}")
        expect(env["SHOP_PORT"] == str(SPLIT_PORTS[module]), f"{module}-svc: port {SPLIT_PORTS[module]}")
        for other in MODULES:
            url = env.get(f"SHOP_{other.upper()}_URL")
            if other == module:
                expect(url is None, f"{module}-svc: no URL for itself")
            else:
                expected = f"http://{other}-svc:{SPLIT_PORTS[other]}"
                expect(url == expected, f"{module}-svc: SHOP_{other.upper()}_URL={url}, want {expected}")
    services = sorted(doc["metadata"]["name"] for doc in of_kind(docs, "Service"))
    expect({f"{m}-svc" for m in MODULES} <= set(services), f"split Services: {services}")
    order_pods = {"app.kubernetes.io/name": "ecommerce-saga", "app.kubernetes.io/instance": "shop",
                  "app.kubernetes.io/component": "order"}  # fmt: skip
    for module in MODULES[1:]:
        peers = named(docs, "NetworkPolicy", f"{module}-svc")["spec"]["ingress"][0]["from"]
        pods = [peer["podSelector"]["matchLabels"] for peer in peers if "podSelector" in peer]
        routers = [peer for peer in peers if peer.get("namespaceSelector", {}).get("matchLabels") ==
                   {"network.openshift.io/policy-group": "ingress"}]  # fmt: skip
        expect(pods == [order_pods], f"{module}-svc accepts pods other than the order service's: {pods}")
        expect(len(routers) == 1, f"{module}-svc: the OpenShift router namespace may call it")


def check_service_monitor(scenario: Scenario, docs: list[Manifest]) -> None:
    monitors = of_kind(docs, "ServiceMonitor")
    if scenario.openshift and "metrics.serviceMonitor.enabled=true" in scenario.args:
        expect(len(monitors) == 1, f"{scenario.name}: one ServiceMonitor")
        endpoint = monitors[0]["spec"]["endpoints"][0]
        expect(endpoint["port"] == "http" and endpoint["path"] == "/metrics", "ServiceMonitor endpoint")
    else:
        expect(not monitors, f"{scenario.name}: ServiceMonitor rendered")


def scenarios() -> list[Scenario]:
    matrix = []
    for topology, split in (("monolith", False), ("split", True)):
        for db, db_args in (
            ("in-chart-db", []),
            ("external-url", EXTERNAL_URL),
            ("external-secret", EXTERNAL_SECRET),
        ):
            if (split and db == "external-url") or (not split and db == "external-secret"):
                continue  # each external form once per topology is enough: url for monolith, secret for split
            base = (SPLIT if split else []) + db_args
            in_chart = db == "in-chart-db"
            matrix.append(Scenario(f"{topology}-{db}", base, split, False, in_chart))
            matrix.append(
                Scenario(
                    f"{topology}-{db}-openshift", base + OPENSHIFT + SERVICE_MONITOR, split, True, in_chart
                )
            )
    return matrix


def check_scenario(scenario: Scenario, docs: list[Manifest]) -> None:
    check_security(docs)
    check_app_pods(docs)
    check_secrets(docs)
    check_routes(scenario, docs)
    check_mongodb(scenario, docs)
    check_topology(scenario, docs)
    check_service_monitor(scenario, docs)


def check_special_cases(helm: str, chart: Path) -> list[tuple[str, list[Manifest]]]:
    """Tokens kept, autoscaling, Ingress, name prefix, and the renders that must fail."""
    given = [
        "--set",
        "tokens.serviceToken=existing-service-token",
        "--set",
        "tokens.adminToken=existing-admin",
    ]
    docs = render(helm, chart, [*SPLIT, *given])
    expect(secret_value(docs, "shop-ecommerce-saga-tokens", "service-token") == "existing-service-token",
           "a given service token is used as is")  # fmt: skip
    expect(secret_value(docs, "shop-ecommerce-saga-tokens", "admin-token") == "existing-admin", "admin token")
    first, second = (render(helm, chart, []) for _ in range(2))
    token_a = secret_value(first, "shop-ecommerce-saga-tokens", "service-token")
    token_b = secret_value(second, "shop-ecommerce-saga-tokens", "service-token")
    expect(len(token_a) == 48 and token_a != token_b, "an unset token is generated (48 characters)")
    helpers = (chart / "templates" / "_helpers.tpl").read_text()
    expect('lookup "v1" "Secret"' in helpers, "existing Secrets are read back with lookup")

    scaled = render(
        helm, chart, [*SPLIT, "--set", "workload.autoscaling.enabled=true", "--set", "ingress.enabled=true"]
    )
    hpas = of_kind(scaled, "HorizontalPodAutoscaler")
    expect(len(hpas) == 5 and all(h["apiVersion"] == "autoscaling/v2" for h in hpas), "an HPA per Deployment")
    expect(all("replicas" not in d["spec"] for d in of_kind(scaled, "Deployment")), "HPA owns the replicas")
    ingress = of_kind(scaled, "Ingress")
    paths = {
        p["path"]: p["backend"]["service"]["name"] for p in ingress[0]["spec"]["rules"][0]["http"]["paths"]
    }
    expect(
        paths.get("/") == "order-svc" and paths.get("/api/inventory") == "inventory-svc", f"Ingress: {paths}"
    )
    check_security(scaled)

    prefixed = render(helm, chart, [*SPLIT, "--set", "split.namePrefix=shop-"])
    order = env_of(named(prefixed, "Deployment", "shop-order-svc"))
    expect(order["SHOP_INVENTORY_URL"] == "http://shop-inventory-svc:8001", "name prefix in the URLs")

    host = ["--set", "route.host=shop.apps.example.com"]
    routed = render(helm, chart, [*SPLIT, *OPENSHIFT, *host])
    routes = {route["metadata"]["name"]: route["spec"] for route in of_kind(routed, "Route")}
    expect(
        all(spec["host"] == "shop.apps.example.com" for spec in routes.values()), "Routes share route.host"
    )
    blocked = routes.get("shop-ecommerce-saga-metrics", {})
    expect(
        blocked.get("path") == "/metrics" and blocked["to"]["weight"] == 0, "/metrics is kept off the router"
    )
    expect(routes["shop-ecommerce-saga-inventory"]["path"] == "/api/inventory", "participant path Routes")

    render_fails(helm, chart, ["--set", "topology=microservices"], r"topology")
    render_fails(helm, chart, ["--set", "mongodb.enabled=false"], r"no database")
    render_fails(helm, chart, ["--set", "monolith.replicas=2"], r"replicas")  # typo caught by the schema
    render_fails(helm, chart, [*EXTERNAL_URL, "--set", "mongodb.enabled=true"], r"not both")
    return [
        ("split-tokens-given", docs),
        ("split-hpa-ingress", scaled),
        ("split-prefixed", prefixed),
        ("split-openshift-route-host", routed),
    ]


def check_compose(path: Path) -> None:
    """compose.yaml runs the same split topology as the chart, with the same names and ports."""
    services = yaml.safe_load(path.read_text())["services"]
    expect(
        set(services) == {"mongodb", *(f"{m}-svc" for m in MODULES)}, f"compose services: {list(services)}"
    )
    for module in MODULES:
        service = services[f"{module}-svc"]
        env = service["environment"]
        port = SPLIT_PORTS[module]
        expect(env["SHOP_MODULES"] == module and env["SHOP_PORT"] == str(port), f"compose {module}: env")
        expect(service["ports"] == [f"127.0.0.1:{port}:{port}"], f"compose {module}: published port")
        expect(service.get("read_only") is True and "healthcheck" in service, f"compose {module}: hardening")
        expect(env["SHOP_SERVICE_TOKEN"].startswith("${SHOP_SERVICE_TOKEN:?"), "compose: no default token")
        expect(env["SHOP_MONGODB_URL"] == "mongodb://mongodb:27017", f"compose {module}: database URL")
        for other in MODULES:
            url = env.get(f"SHOP_{other.upper()}_URL")
            want = None if other == module else f"http://{other}-svc:{SPLIT_PORTS[other]}"
            expect(url == want, f"compose {module}: SHOP_{other.upper()}_URL={url}, want {want}")


def write_outputs(out: Path, name: str, docs: list[Manifest]) -> int:
    native = [doc for doc in docs if doc["kind"] not in ("Route", "ServiceMonitor")]
    (out / "native" / f"{name}.yaml").write_text(yaml.safe_dump_all(native, sort_keys=False))
    routes = of_kind(docs, "Route")
    for route in routes:
        (out / "routes" / f"{name}--{route['metadata']['name']}.json").write_text(json.dumps(route, indent=1))
    return len(routes)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", required=True)
    parser.add_argument("--chart", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compose", type=Path, help="compose.yaml to check against the split topology")
    args = parser.parse_args()
    for folder in ("native", "routes"):
        (args.out / folder).mkdir(parents=True, exist_ok=True)
        for old in (args.out / folder).iterdir():
            old.unlink()
    rendered = []
    try:
        for scenario in scenarios():
            docs = render(args.helm, args.chart, scenario.args)
            check_scenario(scenario, docs)
            rendered.append((scenario.name, docs))
            kinds = sorted({doc["kind"] for doc in docs})
            say(f"ok: {scenario.name}: {len(docs)} manifests ({', '.join(kinds)})")
        rendered += check_special_cases(args.helm, args.chart)
        say(
            "ok: tokens (given values kept, unset ones generated), HPAs, Ingress, name prefix, route host, "
            "/metrics blocked, invalid values rejected"
        )
        if args.compose:
            check_compose(args.compose)
            say(f"ok: {args.compose.name} wires the split topology like the chart")
    except ChartCheckError as exc:
        sys.stderr.write(f"FAIL: {exc}\n")
        return 1
    routes = sum(write_outputs(args.out, name, docs) for name, docs in rendered)
    say(f"wrote {len(rendered)} renders and {routes} Routes to {args.out} for schema validation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
