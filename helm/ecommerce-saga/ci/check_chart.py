"""Renders the chart in every supported shape and asserts what the manifests must hold.

Run by scripts/helm-check.sh, which then validates the files written here: every Kubernetes
manifest with kubernetes-validate --strict (OUT/native/*.yaml), every Route with the Route CRD
schema (OUT/routes/*.json), and every render with checkov (OUT/all/*.yaml). With --compose, also
checks that compose.yaml wires the split topology like the chart.

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
METRICS_PORT = 9090
SECRETS_DIR = "/var/run/secrets/ecommerce-saga"
DIGEST = "sha256:" + "ab" * 32


def sets(**values: object) -> list[str]:
    args = []
    for key, value in values.items():
        args += ["--set", f"{key.replace('__', '.')}={value}"]
    return args


OPENSHIFT = [
    "--api-versions", "security.openshift.io/v1",
    "--api-versions", "route.openshift.io/v1",
    "--api-versions", "monitoring.coreos.com/v1",
]  # fmt: skip
OIDC = sets(oidc__issuer="https://sso.example.com/realms/shop", oidc__audience="shop")
# GitOps mode: nothing generated, every secret from a Secret managed outside the chart.
GITOPS = sets(secrets__generate="false", tokens__existingSecret="shop-tokens")
GITOPS_DB = sets(mongodb__auth__existingSecret="shop-mongodb-auth")
# Values given: rendered as is, even without cluster access.
GIVEN = sets(tokens__serviceToken="given-service-token", tokens__adminToken="given-admin-token")
GIVEN_DB = sets(mongodb__auth__rootPassword="given-root", mongodb__auth__password="given-app")  # noqa: S106
EXTERNAL_URL = sets(
    mongodb__enabled="false", externalMongodb__url="mongodb://db.example:27017/?replicaSet=rs0"
)
EXTERNAL_SECRET = sets(
    mongodb__enabled="false",
    externalMongodb__existingSecret="shop-mongodb",
    externalMongodb__existingSecretKey="url",
)
SPLIT = sets(topology="split")
OPERATIONS = sets(
    metrics__serviceMonitor__enabled="true",
    metrics__prometheusRule__enabled="true",
    metrics__grafanaDashboard__enabled="true",
    metrics__grafanaDashboard__grafanaOperator="true",
    audit__enabled="true",
)


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
    command = [helm, "template", "shop", str(chart), "--namespace", "shop", *args]
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
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield where, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield where, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield where, doc["spec"]


def env_of(deployment: Manifest) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def secret_value(docs: list[Manifest], name: str, key: str) -> str:
    return base64.b64decode(named(docs, "Secret", name)["data"][key]).decode()


# --- checks that hold in every scenario ----------------------------------------------------------


def check_security(scenario: Scenario, docs: list[Manifest]) -> None:
    for where, spec in pod_specs(docs):
        pod = spec.get("securityContext", {})
        expect(pod.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
        expect(pod.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{where}: seccomp RuntimeDefault")
        if scenario.openshift:
            expect(
                "runAsUser" not in pod and "fsGroup" not in pod,
                f"{where}: OpenShift assigns the UID and fsGroup",
            )
        else:
            expect(
                pod.get("runAsUser", 0) >= 10000 and pod.get("fsGroup"), f"{where}: a high UID and fsGroup"
            )
        for container in spec["containers"]:
            ctx = container.get("securityContext", {})
            expect(ctx.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation")
            expect(ctx.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem")
            expect(ctx.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: drop ALL capabilities")
            expect("runAsUser" not in ctx, f"{where}: runAsUser in the container")
            expect("resources" in container, f"{where}: resources")
            for item in container.get("env", []):
                from_secret = "secretKeyRef" in item.get("valueFrom", {})
                allowed = item["name"].startswith("SHOP_OIDC_")  # not secret (oidc.existingSecret)
                expect(
                    not from_secret or allowed, f"{where}: secret {item['name']} as a variable, not a file"
                )
    for doc in docs:
        expect(
            doc["metadata"].get("namespace") == "shop", f"{doc['kind']}/{doc['metadata']['name']}: namespace"
        )


def check_app_pods(docs: list[Manifest]) -> None:
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        spec = template["spec"]
        container = spec["containers"][0]
        env = env_of(deployment)
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        port = ports["http"]
        expect(
            ports["metrics"] == METRICS_PORT and env["SHOP_METRICS_PORT"] == str(METRICS_PORT),
            f"{name}: metrics",
        )
        expect(env["SHOP_PORT"] == str(port), f"{name}: SHOP_PORT matches the container port")
        expect(env["SHOP_HOST"] == "0.0.0.0", f"{name}: SHOP_HOST")  # noqa: S104
        expect(env["SHOP_WORKER_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}, f"{name}: worker id")
        for secret in ("MONGODB_URL", "SERVICE_TOKEN", "ADMIN_TOKEN"):
            expect(f"SHOP_{secret}" not in env, f"{name}: SHOP_{secret} as a variable")
            path = env[f"SHOP_{secret}_FILE"]
            expect(
                path == f"{SECRETS_DIR}/{secret.lower().replace('_', '-')}",
                f"{name}: SHOP_{secret}_FILE={path}",
            )
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        expect(mounts[SECRETS_DIR].get("readOnly") is True, f"{name}: secrets mounted read-only")
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        paths = {
            item["path"]
            for source in volumes["secrets"]["projected"]["sources"]
            for item in source["secret"]["items"]
        }
        want = {"mongodb-url", "service-token", "admin-token"}
        if "SHOP_SMTP_PASSWORD_FILE" in env:
            want.add("smtp-password")
        expect(paths == want, f"{name}: secret files {paths}")
        timeout = int(env["SHOP_MONGODB_START_TIMEOUT_SECONDS"])
        startup = container["startupProbe"]
        expect(startup["httpGet"]["path"] == "/healthz", f"{name}: startup probe")
        allowed = startup["periodSeconds"] * startup["failureThreshold"]
        expect(
            timeout + 30 <= allowed < timeout + 30 + startup["periodSeconds"],
            f"{name}: startup allows {allowed}s",
        )
        expect(container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness probe")
        expect(container["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness probe")
        pause = float(container["lifecycle"]["preStop"]["exec"]["command"][-1].split("sleep(")[1].rstrip(")"))
        grace = int(env["SHOP_SAGA_SHUTDOWN_GRACE_SECONDS"])
        expect(
            spec["terminationGracePeriodSeconds"] > pause + grace, f"{name}: grace below preStop + hand-over"
        )
        expect({"/tmp", "/var/lib/ecommerce-saga"} <= set(mounts), f"{name}: writable /tmp and data dir")  # noqa: S108
        annotations = template["metadata"]["annotations"]
        expect(annotations.get("prometheus.io/port") == str(METRICS_PORT), f"{name}: prometheus.io/port")
        labels = template["metadata"]["labels"]
        for label in ("name", "instance", "component", "version", "part-of", "managed-by"):
            expect(f"app.kubernetes.io/{label}" in labels, f"{name}: label app.kubernetes.io/{label}")
        spread = spec.get("topologySpreadConstraints", [])
        expect(
            spread and all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread), f"{name}: soft spread"
        )
        expect("preferredDuringSchedulingIgnoredDuringExecution" in spec["affinity"]["podAntiAffinity"], name)
        service = named(docs, "Service", name)
        expect(
            [p["port"] for p in service["spec"]["ports"]] == [port],
            f"{name}: the API Service has the API port only",
        )
        metrics = named(docs, "Service", f"{name}-metrics")
        expect(
            [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"],
            f"{name}-metrics: metrics port only",
        )
        expect(
            deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, f"{name}: rolling update"
        )
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        spec = pdb["spec"]
        expect(
            int(str(spec["maxUnavailable"]).rstrip("%")) >= 1, f"PDB {pdb['metadata']['name']} blocks drains"
        )
        expect(
            spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow", "a crash-looping pod never blocks a drain"
        )


def check_secrets(docs: list[Manifest]) -> None:
    for secret in of_kind(docs, "Secret"):
        keep = secret["metadata"].get("annotations", {}).get("helm.sh/resource-policy")
        expect(keep == "keep", f"Secret/{secret['metadata']['name']}: helm.sh/resource-policy: keep")


def check_routes(scenario: Scenario, docs: list[Manifest]) -> None:
    routes = of_kind(docs, "Route")
    if not scenario.openshift:
        expect(not routes, f"{scenario.name}: Routes rendered without route.openshift.io/v1")
        return
    public = "order-svc" if scenario.split else "shop-ecommerce-saga"
    main = named(docs, "Route", "shop-ecommerce-saga")
    expect(
        main["spec"]["to"] == {"kind": "Service", "name": public, "weight": 100}, "Route to the public API"
    )
    expect(len(routes) == (5 if scenario.split else 1), f"{scenario.name}: number of Routes")
    for route in routes:
        spec = route["spec"]
        expect(
            spec["tls"] == {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"}, "Route TLS"
        )
        expect(spec["wildcardPolicy"] == "None", "Route wildcardPolicy rendered explicitly")
        expect(spec["port"] == {"targetPort": "http"}, "a Route reaches the API port only")
        service = named(docs, "Service", spec["to"]["name"])
        expect(
            [p["name"] for p in service["spec"]["ports"]] == ["http"], "a Route's Service carries no metrics"
        )


def check_mongodb(scenario: Scenario, docs: list[Manifest]) -> None:
    statefulsets = of_kind(docs, "StatefulSet")
    if not scenario.in_chart_db:
        expect(not statefulsets, f"{scenario.name}: no in-chart MongoDB with an external one")
        return
    mongodb = named(docs, "StatefulSet", "shop-ecommerce-saga-mongodb")
    expect(mongodb["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data", "MongoDB PVC")
    container = mongodb["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    expect(
        env["MONGO_INITDB_ROOT_PASSWORD_FILE"].startswith("/var/run/secrets/mongodb/"),
        "root password as a file",
    )
    script = named(docs, "ConfigMap", "shop-ecommerce-saga-mongodb-init")["data"]["10-app-user.js"]
    expect(
        'role: "readWrite", db: database' in script and env["SHOP_APP_DATABASE"] == "ecommerce_saga",
        "app user",
    )
    password_file = "/var/run/secrets/mongodb/mongodb-password"  # noqa: S105 - a path
    expect(env["SHOP_APP_PASSWORD_FILE"] == password_file, "app password file")
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    expect("/docker-entrypoint-initdb.d" in mounts, "the init script is mounted")
    service = named(docs, "Service", "shop-ecommerce-saga-mongodb")
    expect(service["spec"]["clusterIP"] == "None", "MongoDB Service is headless")
    if any(
        doc["kind"] == "Secret" and doc["metadata"]["name"] == "shop-ecommerce-saga-mongodb" for doc in docs
    ):
        url = secret_value(docs, "shop-ecommerce-saga-mongodb", "mongodb-url")
        password = secret_value(docs, "shop-ecommerce-saga-mongodb", "mongodb-password")
        want = f"mongodb://shop:{password}@shop-ecommerce-saga-mongodb:27017/ecommerce_saga?authSource=ecommerce_saga"
        expect(url == want, f"the app connects as its own user, not root: {url}")
    policy = named(docs, "NetworkPolicy", "shop-ecommerce-saga-mongodb")
    peers = policy["spec"]["ingress"][0]["from"]
    expect(len(peers) == 1 and "podSelector" in peers[0], "MongoDB accepts only pods of the release")
    components = peers[0]["podSelector"]["matchExpressions"][0]["values"]
    expect(
        "mongodb" not in components and "test" not in components and "order" in components, "app pods only"
    )


def check_topology(scenario: Scenario, docs: list[Manifest]) -> None:
    deployments = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Deployment")}
    if not scenario.split:
        expect(list(deployments) == ["shop-ecommerce-saga"], f"monolith Deployments: {list(deployments)}")
        env = env_of(deployments["shop-ecommerce-saga"])
        expect(env["SHOP_MODULES"] == ",".join(MODULES), "the monolith hosts every module")
        expect(
            not any(key.endswith("_URL") and key.startswith("SHOP_") and "OIDC" not in key for key in env),
            "URLs",
        )
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
            want = None if other == module else f"http://{other}-svc:{SPLIT_PORTS[other]}"
            expect(url == want, f"{module}-svc: SHOP_{other.upper()}_URL={url}, want {want}")
    order_pods = {"app.kubernetes.io/name": "ecommerce-saga", "app.kubernetes.io/instance": "shop",
                  "app.kubernetes.io/component": "order"}  # fmt: skip
    for module in MODULES[1:]:
        api, *_ = named(docs, "NetworkPolicy", f"{module}-svc")["spec"]["ingress"]
        pods = [peer["podSelector"]["matchLabels"] for peer in api["from"] if "podSelector" in peer]
        components = [labels["app.kubernetes.io/component"] for labels in pods]
        want = ["order", "test"] if module == "inventory" else ["order"]
        expect(components == want and pods[0] == order_pods, f"{module}-svc accepts pods {components}")


def check_network(scenario: Scenario, docs: list[Manifest]) -> None:
    """The API port admits the router; the metrics port only the monitoring namespaces."""
    router = {"matchLabels": {"network.openshift.io/policy-group": "ingress"}}
    nginx = {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    monitoring = [{"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}]
    if scenario.openshift:
        monitoring.insert(0, {"matchLabels": {"network.openshift.io/policy-group": "monitoring"}})
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        policy = named(docs, "NetworkPolicy", name)["spec"]
        expect(policy["policyTypes"] == ["Ingress"] and "egress" not in policy, f"{name}: egress left open")
        api, metrics = policy["ingress"]
        expect(api["ports"] == [{"port": "http", "protocol": "TCP"}], f"{name}: API rule")
        namespaces = [peer["namespaceSelector"] for peer in api["from"] if "namespaceSelector" in peer]
        expect(
            namespaces == ([router, nginx] if scenario.openshift else [nginx]),
            f"{name}: routers {namespaces}",
        )
        expect(metrics["ports"] == [{"port": "metrics", "protocol": "TCP"}], f"{name}: metrics rule")
        expect(
            [peer.get("namespaceSelector") for peer in metrics["from"]] == monitoring,
            f"{name}: metrics peers",
        )


def check_monitoring(scenario: Scenario, docs: list[Manifest]) -> None:
    monitors = of_kind(docs, "ServiceMonitor")
    if scenario.openshift and "metrics.serviceMonitor.enabled=true" in scenario.args:
        expect(len(monitors) == 1, f"{scenario.name}: one ServiceMonitor")
        spec = monitors[0]["spec"]
        expect(spec["endpoints"][0]["port"] == "metrics", "the ServiceMonitor scrapes the management port")
        expect(spec["selector"]["matchLabels"]["ecommerce-saga/metrics"] == "true", "metrics Services only")
        selected = [
            s for s in of_kind(docs, "Service") if s["metadata"]["labels"].get("ecommerce-saga/metrics")
        ]
        expect(len(selected) == len(of_kind(docs, "Deployment")), "a metrics Service per Deployment")
        expect(
            all(s["metadata"]["name"].endswith("-metrics") for s in selected),
            "only metrics Services selected",
        )
    else:
        expect(not monitors, f"{scenario.name}: ServiceMonitor rendered")


def scenarios() -> list[Scenario]:
    """monolith/split x in-chart/external-URL/external-Secret x Kubernetes/OpenShift, both secret modes."""
    matrix = []
    databases = (
        ("in-chart-db", [], True),
        ("external-url", EXTERNAL_URL, False),
        ("external-secret", EXTERNAL_SECRET, False),
    )
    for topology, split in (("monolith", False), ("split", True)):
        for db, db_args, in_chart in databases:
            for platform, openshift in (("kubernetes", False), ("openshift", True)):
                gitops = openshift == split  # each shape once in each secrets mode
                secrets = (
                    (GITOPS + (GITOPS_DB if in_chart else []))
                    if gitops
                    else (GIVEN + (GIVEN_DB if in_chart else []))
                )
                args = (SPLIT if split else []) + db_args + OIDC + secrets
                if openshift:
                    args += OPENSHIFT + sets(metrics__serviceMonitor__enabled="true")
                mode = "gitops" if gitops else "given"
                matrix.append(
                    Scenario(f"{topology}-{db}-{platform}-{mode}", args, split, openshift, in_chart)
                )
    return matrix


def check_scenario(scenario: Scenario, docs: list[Manifest]) -> None:
    check_security(scenario, docs)
    check_app_pods(docs)
    check_secrets(docs)
    check_routes(scenario, docs)
    check_mongodb(scenario, docs)
    check_topology(scenario, docs)
    check_network(scenario, docs)
    check_monitoring(scenario, docs)


def check_rejections(helm: str, chart: Path) -> None:
    """What the values schema and the templates refuse, each with a message that says why."""
    base = [*OIDC, *GIVEN, *GIVEN_DB]
    cases = [
        ([], r"oidc.issuer \(and oidc.audience\) or oidc.existingSecret is required"),
        (OIDC, r"no cluster access .* secrets.generate=false \(GitOps mode\)"),
        (
            [*OIDC, *sets(secrets__generate="false")],
            r"GitOps mode.*tokens.serviceToken, or tokens.existingSecret",
        ),
        ([*OIDC, *GITOPS], r"GitOps mode.*mongodb.auth.rootPassword, or mongodb.auth.existingSecret"),
        (
            [*base, *sets(workload__autoscaling__minReplicas=6)],
            r"minReplicas \(6\) is above autoscaling.maxReplicas",
        ),
        ([*base, *sets(route__host="https://shop.example.com")], r"route.host"),
        ([*base, *sets(route__host="shop.example.com/api")], r"route.host"),
        ([*base, *sets(fullnameOverride="Shop")], r"fullnameOverride"),
        ([*base, *sets(networkPolicy__monitoring__namespaceSelector="null")], r"namespaceSelector"),
        ([*base, *sets(networkPolicy__ingressController__namespaceSelector="null")], r"namespaceSelector"),
        ([*base, *sets(workload__shutdown__terminationGracePeriodSeconds=20)], r"must exceed preStopSeconds"),
        ([*base, *sets(metrics__port=8000)], r"management port must be a port of its own"),
        ([*base, *sets(oidc__developmentIssuer="true")], r"developmentIssuer is for demos"),
        ([*base, *sets(smtp__tls="ssl")], r"smtp.tls"),
        ([*base, *sets(smtp__host="relay", smtp__password="p")], r"needs smtp.username"),  # noqa: S106
        ([*base, *sets(smtp__username="u", smtp__password="p")], r"smtp.host is empty"),  # noqa: S106
        (
            [*base, *sets(smtp__host="r", smtp__username="u", smtp__password="p", smtp__existingSecret="s")],  # noqa: S106
            r"smtp.password or smtp.existingSecret, not both",
        ),
        ([*base, *sets(workload__podDisruptionBudget__maxUnavailable=0)], r"maxUnavailable"),
        ([*base, *sets(image__digest="latest")], r"image.digest"),
        ([*base, *sets(topology="microservices")], r"topology"),
        ([*base, *sets(mongodb__enabled="false")], r"no database"),
        ([*base, *sets(monolith__replicas=2)], r"replicas"),  # a typo caught by the schema
        ([*base, *EXTERNAL_URL, *sets(mongodb__enabled="true")], r"not both"),
    ]
    for args, pattern in cases:
        render_fails(helm, chart, args, pattern)


def check_secret_modes(helm: str, chart: Path) -> tuple[list[Manifest], list[Manifest]]:
    """Values given are used as is; GitOps mode renders no Secret and mounts the given ones."""
    given = render(helm, chart, [*SPLIT, *OIDC, *GIVEN, *GIVEN_DB])
    expect(
        secret_value(given, "shop-ecommerce-saga-tokens", "service-token") == "given-service-token", "token"
    )
    expect(
        secret_value(given, "shop-ecommerce-saga-mongodb", "mongodb-root-password") == "given-root", "root"
    )
    gitops = render(helm, chart, [*SPLIT, *OIDC, *GITOPS, *GITOPS_DB])
    expect(not of_kind(gitops, "Secret"), "GitOps mode renders no Secret")
    volume = next(v for v in named(gitops, "Deployment", "order-svc")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "secrets")  # fmt: skip
    names = [source["secret"]["name"] for source in volume["projected"]["sources"]]
    expect(names == ["shop-mongodb-auth", "shop-tokens"], f"GitOps mode mounts the given Secrets: {names}")
    helpers = (chart / "templates" / "_helpers.tpl").read_text()
    expect(
        'lookup "v1" "Secret"' in helpers and "IsUpgrade" in helpers,
        "existing Secrets are read back on upgrade",
    )
    return given, gitops


def check_images(helm: str, chart: Path, base: list[str], given: list[Manifest]) -> list[Manifest]:
    """Tags and digests, pull policies, the registry mirror, the OpenShift image trigger, the platform."""

    def images(docs: list[Manifest]) -> dict[str, tuple[str, str]]:
        return {f"{w}/{c['name']}": (c["image"], c["imagePullPolicy"]) for w, spec in pod_specs(docs)
                for c in spec["containers"]}  # fmt: skip

    tagged = images(given)
    expect(tagged["Deployment/order-svc/app"] == ("localhost/ecommerce-saga:0.1.0", "Always"), str(tagged))
    pinned_args = [*base, *sets(image__digest=DIGEST, mongodb__image__digest=DIGEST)]
    pinned = render(helm, chart, pinned_args)
    refs = images(pinned)
    expect(
        refs["Deployment/shop-ecommerce-saga/app"] == (f"localhost/ecommerce-saga@{DIGEST}", "IfNotPresent"),
        str(refs),
    )
    expect(
        refs["StatefulSet/shop-ecommerce-saga-mongodb/mongodb"][0] == f"docker.io/library/mongo@{DIGEST}",
        str(refs),
    )
    skips = named(pinned, "Deployment", "shop-ecommerce-saga")["metadata"]["annotations"]
    expect(not any("CKV_K8S_43" in value for value in skips.values()), "a digest needs no skip of CKV_K8S_43")
    mirrored = images(render(helm, chart, [*base, *sets(global__imageRegistry="registry.example:5000/shop")]))
    expect(
        mirrored["Deployment/shop-ecommerce-saga/app"][0]
        == "registry.example:5000/shop/ecommerce-saga:0.1.0",
        "",
    )
    expect(
        mirrored["StatefulSet/shop-ecommerce-saga-mongodb/mongodb"][0]
        == "registry.example:5000/shop/library/mongo:7.0",
        "",
    )
    trigger_args = [*base, *OPENSHIFT, *sets(image__openshiftTrigger__enabled="true", image__tag="2.0.0")]
    triggered = named(render(helm, chart, trigger_args), "Deployment", "shop-ecommerce-saga")
    trigger = json.loads(triggered["metadata"]["annotations"]["image.openshift.io/triggers"])
    expect(trigger[0]["from"] == {"kind": "ImageStreamTag", "name": "ecommerce-saga:2.0.0"}, str(trigger))
    forced = render(helm, chart, [*base, *sets(platform="openshift")])
    forced_pod = named(forced, "Deployment", "shop-ecommerce-saga")["spec"]["template"]["spec"]
    expect("runAsUser" not in forced_pod["securityContext"], "platform=openshift without the API")

    return pinned


def check_identity(helm: str, chart: Path, given: list[Manifest]) -> None:
    """OIDC from values, from a Secret, or the development issuer."""
    demo = env_of(named(render(helm, chart, [*GIVEN, *GIVEN_DB, *sets(oidc__developmentIssuer="true")]),
                        "Deployment", "shop-ecommerce-saga"))  # fmt: skip
    expect(
        "SHOP_OIDC_ISSUER" not in demo and demo["SHOP_OIDC_ADMIN_ROLE"] == "shop-admin", "development issuer"
    )
    issuer = env_of(named(given, "Deployment", "order-svc"))
    expect(
        issuer["SHOP_OIDC_ISSUER"] == "https://sso.example.com/realms/shop"
        and issuer["SHOP_OIDC_AUDIENCE"] == "shop",
        "",
    )
    from_secret_args = [*GIVEN, *GIVEN_DB, *sets(oidc__existingSecret="shop-oidc")]
    from_secret = named(render(helm, chart, from_secret_args), "Deployment", "shop-ecommerce-saga")
    oidc = env_of(from_secret)["SHOP_OIDC_ISSUER"]
    expect(oidc == {"secretKeyRef": {"name": "shop-oidc", "key": "issuer"}}, f"OIDC from its Secret: {oidc}")


SMTP = sets(
    smtp__host="relay.example.com",
    smtp__username="shop",
    smtp__password="given-smtp-password",  # noqa: S106
    smtp__from="orders@shop.example",
    networkPolicy__egress__enabled="true",
)
EGRESS_PEERS = ["--set-json", 'networkPolicy.egress.smtp.to=[{"ipBlock":{"cidr":"192.0.2.25/32"}}]']


def egress_ports(policy: Manifest) -> set[tuple[object, str]]:
    return {(port["port"], port["protocol"]) for rule in policy["spec"]["egress"] for port in rule["ports"]}


def check_email(helm: str, chart: Path, base: list[str]) -> list[tuple[str, list[Manifest]]]:
    """SMTP only in the pods hosting the notification module, its password a file; egress to the
    relay's port only from those pods."""
    split = render(helm, chart, [*SPLIT, *base, *SMTP, *EGRESS_PEERS])
    monolith = render(helm, chart, [*base, *OPENSHIFT, *SMTP, *sets(smtp__tls="tls")])
    expect(
        secret_value(split, "shop-ecommerce-saga-smtp", "smtp-password") == "given-smtp-password",
        "SMTP Secret",
    )
    for module in MODULES:
        env = env_of(named(split, "Deployment", f"{module}-svc"))
        smtp = {key: value for key, value in env.items() if key.startswith(("SHOP_SMTP_", "SHOP_SHOP_"))}
        policy = named(split, "NetworkPolicy", f"{module}-svc")
        expect(policy["spec"]["policyTypes"] == ["Ingress", "Egress"], f"{module}-svc: egress restricted")
        ports = egress_ports(policy)
        expect(
            {(53, "UDP"), (27017, "TCP"), ("http", "TCP"), (443, "TCP")} <= ports, f"{module}-svc: {ports}"
        )
        relay = [rule for rule in policy["spec"]["egress"] if rule["ports"][0]["port"] == 587]
        if module != "notification":
            expect(not smtp, f"{module}-svc: SMTP settings {sorted(smtp)}")
            expect(not relay and (587, "TCP") not in ports, f"{module}-svc reaches the relay")
            continue
        expect(
            smtp["SHOP_SMTP_HOST"] == "relay.example.com"
            and smtp["SHOP_SMTP_USERNAME"] == "shop"
            and smtp["SHOP_SMTP_FROM"] == "orders@shop.example"
            and smtp["SHOP_SMTP_PASSWORD_FILE"] == f"{SECRETS_DIR}/smtp-password"
            and "SHOP_SMTP_PASSWORD" not in smtp,
            f"notification-svc: SMTP settings {smtp}",
        )
        expect(
            relay
            == [
                {"ports": [{"port": 587, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "192.0.2.25/32"}}]}
            ],
            f"notification-svc: relay rule {relay}",
        )
    for name in ("shop-ecommerce-saga-mongodb", "shop-ecommerce-saga-jobs"):
        policy = named(split, "NetworkPolicy", name)
        expect("Egress" in policy["spec"]["policyTypes"], f"{name}: egress restricted")
        expect((587, "TCP") not in egress_ports(policy), f"{name} reaches the relay")
    mongodb = egress_ports(named(split, "NetworkPolicy", "shop-ecommerce-saga-mongodb"))
    expect(mongodb == {(53, "UDP"), (53, "TCP")}, f"MongoDB: DNS only, not {mongodb}")
    pod = named(monolith, "NetworkPolicy", "shop-ecommerce-saga")
    expect(
        {(465, "TCP"), (5353, "UDP")} <= egress_ports(pod), "monolith on OpenShift: relay on 465, DNS on 5353"
    )
    env = env_of(named(monolith, "Deployment", "shop-ecommerce-saga"))
    expect(env["SHOP_SMTP_TLS"] == "tls", "SHOP_SMTP_TLS")

    relay_secret = sets(
        smtp__host="relay.example.com",
        smtp__username="shop",
        smtp__existingSecret="relay",
        smtp__existingSecretKey="pw",
    )
    existing = render(helm, chart, [*base, *relay_secret])
    expect(
        not any(s["metadata"]["name"].endswith("-smtp") for s in of_kind(existing, "Secret")),
        "no SMTP Secret",
    )
    sources = named(existing, "Deployment", "shop-ecommerce-saga")["spec"]["template"]["spec"]["volumes"]
    relay_files = [s["secret"] for v in sources if v["name"] == "secrets" for s in v["projected"]["sources"]
                   if s["secret"]["name"] == "relay"]  # fmt: skip
    expect(
        relay_files == [{"name": "relay", "items": [{"key": "pw", "path": "smtp-password"}]}],
        f"{relay_files}",
    )
    outbox = env_of(named(render(helm, chart, base), "Deployment", "shop-ecommerce-saga"))
    expect(
        "SHOP_SMTP_HOST" not in outbox and outbox["SHOP_SHOP_NAME"] == "ecommerce-saga shop",
        "no relay: outbox",
    )
    return [
        ("split-smtp-egress", split),
        ("monolith-openshift-smtp-egress", monolith),
        ("monolith-smtp-secret", existing),
    ]


def check_scaling_and_exposure(helm: str, chart: Path, base: list[str]) -> tuple[list[Manifest], ...]:
    """HPAs, Ingress, name prefix, one host for every Route and none for /metrics."""
    scaled = render(
        helm, chart, [*SPLIT, *base, *sets(workload__autoscaling__enabled="true", ingress__enabled="true")]
    )
    hpas = of_kind(scaled, "HorizontalPodAutoscaler")
    expect(len(hpas) == 5 and all(h["apiVersion"] == "autoscaling/v2" for h in hpas), "an HPA per Deployment")
    expect(all("replicas" not in d["spec"] for d in of_kind(scaled, "Deployment")), "HPA owns the replicas")
    paths = {
        p["path"]: p["backend"]["service"]
        for p in of_kind(scaled, "Ingress")[0]["spec"]["rules"][0]["http"]["paths"]
    }
    expect(paths["/"] == {"name": "order-svc", "port": {"name": "http"}}, f"Ingress: {paths}")
    expect(paths["/api/inventory"]["name"] == "inventory-svc", f"Ingress: {paths}")

    prefixed = render(helm, chart, [*SPLIT, *base, *sets(split__namePrefix="shop-")])
    order = env_of(named(prefixed, "Deployment", "shop-order-svc"))
    expect(order["SHOP_INVENTORY_URL"] == "http://shop-inventory-svc:8001", "name prefix in the URLs")

    routed = render(helm, chart, [*SPLIT, *base, *OPENSHIFT, *sets(route__host="shop.apps.example.com")])
    routes = {route["metadata"]["name"]: route["spec"] for route in of_kind(routed, "Route")}
    expect(
        all(spec["host"] == "shop.apps.example.com" for spec in routes.values()), "Routes share route.host"
    )
    expect(not any(spec.get("path") == "/metrics" for spec in routes.values()), "no Route for /metrics")
    expect(routes["shop-ecommerce-saga-inventory"]["path"] == "/api/inventory", "participant path Routes")

    return scaled, prefixed, routed


def check_operations(helm: str, chart: Path, base: list[str]) -> list[Manifest]:
    """Alerts, the dashboard in both forms, the audit job."""
    operated = render(
        helm,
        chart,
        [*SPLIT, *base, *OPENSHIFT, "--api-versions", "grafana.integreatly.org/v1beta1", *OPERATIONS],
    )
    rules = of_kind(operated, "PrometheusRule")[0]["spec"]["groups"][0]["rules"]
    alerts = sorted({rule["alert"] for rule in rules})
    expect(
        alerts == ["AuditFailed", "NoReadyReplicas", "SagaFailureRatioHigh", "SagasParked"],
        f"alerts {alerts}",
    )
    expect(sum(rule["alert"] == "NoReadyReplicas" for rule in rules) == 5, "a NoReadyReplicas per Deployment")
    dashboard = named(operated, "ConfigMap", "shop-ecommerce-saga-dashboard")
    panels = json.loads(dashboard["data"]["ecommerce-saga.json"])["panels"]
    expect(
        dashboard["metadata"]["labels"]["grafana_dashboard"] == "1" and len(panels) >= 8, "Grafana dashboard"
    )
    operator = of_kind(operated, "GrafanaDashboard")[0]["spec"]
    expect(
        operator["configMapRef"]["name"] == "shop-ecommerce-saga-dashboard",
        "GrafanaDashboard reads the ConfigMap",
    )
    job = named(operated, "CronJob", "shop-ecommerce-saga-audit")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]
    expect("ecommerce-saga audit" in job["containers"][0]["args"][0], "the audit CronJob runs the audit")
    expect(
        job["containers"][0]["env"][0]["name"] == "SHOP_MONGODB_URL_FILE",
        "the audit reads the URL from a file",
    )

    return operated


def check_helm_test(given: list[Manifest]) -> None:
    """The test pod orders through the public Service as the admin, with a token read from a file."""
    test = of_kind(given, "Pod")[0]
    script = test["spec"]["containers"][0]["args"][0]
    expect(
        '"http://order-svc:8000"' in script and '"http://inventory-svc:8001"' in script,
        "helm test calls order-svc",
    )
    expect(
        '"Authorization", "Bearer " + token' in script and '"customer_id": "helm-test"' in script, "test auth"
    )
    expect(
        test["spec"]["volumes"][0]["secret"]["items"] == [{"key": "admin-token", "path": "admin-token"}],
        "token",
    )


def check_special_cases(helm: str, chart: Path) -> list[tuple[str, list[Manifest]]]:
    """Secrets modes, images, identity, autoscaling, Ingress, name prefix, operations, the helm test."""
    base = [*OIDC, *GIVEN, *GIVEN_DB]
    given, gitops = check_secret_modes(helm, chart)
    pinned = check_images(helm, chart, base, given)
    check_identity(helm, chart, given)
    scaled, prefixed, routed = check_scaling_and_exposure(helm, chart, base)
    operated = check_operations(helm, chart, base)
    check_helm_test(given)
    emailed = check_email(helm, chart, base)
    return [
        *emailed,
        ("split-given", given),
        ("split-gitops", gitops),
        ("monolith-digests", pinned),
        ("split-hpa-ingress", scaled),
        ("split-prefixed", prefixed),
        ("split-openshift-route-host", routed),
        ("split-openshift-operations", operated),
    ]


def check_compose(path: Path) -> None:
    """compose.yaml runs the same split topology as the chart, with the same names and ports."""
    document = yaml.safe_load(path.read_text())
    services = document["services"]
    split = {f"{m}-svc" for m in MODULES}
    expect(set(services) == {"mongodb", "monolith", *split}, f"compose services: {list(services)}")
    expect(services["monolith"]["profiles"] == ["monolith"], "compose: the monolith is a profile")
    for name in split:
        expect(services[name]["profiles"] == ["split"], f"compose {name}: profile split")
    mongodb = services["mongodb"]
    expect("MONGO_INITDB_ROOT_PASSWORD_FILE" in mongodb["environment"], "compose: MongoDB with auth")
    for module in MODULES:
        service = services[f"{module}-svc"]
        env = service["environment"]
        port = SPLIT_PORTS[module]
        expect(env["SHOP_MODULES"] == module and env["SHOP_PORT"] == str(port), f"compose {module}: env")
        expect(service["ports"] == [f"127.0.0.1:{port}:{port}"], f"compose {module}: published port")
        expect(service.get("read_only") is True and "healthcheck" in service, f"compose {module}: hardening")
        expect(
            env["SHOP_MONGODB_URL_FILE"] == "/run/secrets/mongodb-url",
            f"compose {module}: database URL as a file",
        )
        token_file = "/run/secrets/service-token"  # noqa: S105 - a path
        expect(
            env["SHOP_SERVICE_TOKEN_FILE"] == token_file,
            f"compose {module}: token as a file",
        )
        for other in MODULES:
            url = env.get(f"SHOP_{other.upper()}_URL")
            want = None if other == module else f"http://{other}-svc:{SPLIT_PORTS[other]}"
            expect(url == want, f"compose {module}: SHOP_{other.upper()}_URL={url}, want {want}")


def write_outputs(out: Path, name: str, docs: list[Manifest]) -> int:
    native = [doc for doc in docs if doc["apiVersion"].split("/")[0] not in CUSTOM_GROUPS]
    (out / "native" / f"{name}.yaml").write_text(yaml.safe_dump_all(native, sort_keys=False))
    (out / "all" / f"{name}.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    routes = of_kind(docs, "Route")
    for route in routes:
        (out / "routes" / f"{name}--{route['metadata']['name']}.json").write_text(json.dumps(route, indent=1))
    return len(routes)


CUSTOM_GROUPS = ("route.openshift.io", "monitoring.coreos.com", "grafana.integreatly.org")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", required=True)
    parser.add_argument("--chart", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compose", type=Path, help="compose.yaml to check against the split topology")
    args = parser.parse_args()
    for folder in ("native", "routes", "all"):
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
        say("ok: secrets given and GitOps mode, digests, registry mirror, image trigger, identity, HPAs, "
            "Ingress, name prefix, route host, alerts, dashboard, audit job, helm test, "
            "SMTP and egress")  # fmt: skip
        check_rejections(args.helm, args.chart)
        say("ok: invalid values rejected (schema and templates), renders without cluster access refused")
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
