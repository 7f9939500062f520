#!/usr/bin/env python3
"""Renders a kustomization offline with the subset of kustomize deploy/k8s uses, and checks the
rendered manifests against the rules of deploy/ (images, socket path, probes, hardening).

    kustomize_lite.py render DIR            print DIR's kustomization as a YAML stream
    kustomize_lite.py same A.yaml B.yaml    exit 1 unless both streams hold the same objects
    kustomize_lite.py lint FILE.yaml...     the deploy rules (see lint())

Supported kustomization fields: `resources` (files and directories), `patches` (`path:` to a
strategic-merge patch; lists of objects with `name` merge by name, in kustomize's order,
other lists are replaced)
and `images` (`name`, `newName`, `newTag`). Anything else is an error, so the manifests cannot
quietly grow past what this renderer (and therefore CI without kubectl) understands.
`scripts/validate-deploy.sh` compares this renderer's output with `kubectl kustomize` where
kubectl exists.
"""
import json
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "patches", "images"}
SOCKET = "unix:///var/run/vaccel/vaccel.sock"
IMAGES = {"vaccel-rs/vaccel", "vaccel-rs/vaccel-rpc-agent"}


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    if isinstance(base, list) and isinstance(patch, list):
        named = all(isinstance(x, dict) and "name" in x for x in base + patch)
        if named:
            # As kustomize orders them: the patch's items (merged), then the base's others.
            by_name = {x["name"]: x for x in base}
            out = [merge(by_name[x["name"]], x) if x["name"] in by_name else x for x in patch]
            patched = {x["name"] for x in patch}
            return out + [x for x in base if x["name"] not in patched]
    return patch


def key(doc):
    return (doc.get("kind"), doc.get("metadata", {}).get("name"))


def containers(doc):
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", spec) if "template" in spec else spec
    return pod.get("containers", []) + pod.get("initContainers", []), pod


def set_image(image, rules):
    name, _, tag = image.partition(":")
    for r in rules:
        if r["name"] == name:
            return f"{r.get('newName', name)}:{r.get('newTag', tag or 'latest')}"
    return image


def render(directory):
    with open(os.path.join(directory, "kustomization.yaml")) as f:
        k = yaml.safe_load(f)
    unknown = set(k) - SUPPORTED
    if unknown:
        sys.exit(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    docs = []
    for r in k.get("resources", []):
        path = os.path.join(directory, r)
        docs += render(path) if os.path.isdir(path) else load_docs(path)
    for p in k.get("patches", []):
        if set(p) != {"path"}:
            sys.exit(f"{directory}: only `path:` patches are supported: {p}")
        for patch in load_docs(os.path.join(directory, p["path"])):
            targets = [i for i, d in enumerate(docs) if key(d) == key(patch)]
            if len(targets) != 1:
                sys.exit(f"{directory}: patch {key(patch)} matches {len(targets)} objects")
            docs[targets[0]] = merge(docs[targets[0]], patch)
    for d in docs:
        for c in containers(d)[0]:
            c["image"] = set_image(c["image"], k.get("images", []))
    return docs


def canonical(docs):
    return sorted(json.dumps(d, sort_keys=True) for d in docs)


def lint(path):
    """The rules every rendered overlay follows; returns the problems found."""
    problems = []
    agents = 0
    for d in load_docs(path):
        where = f"{path}: {d['kind']}/{d['metadata']['name']}"
        cs, pod = containers(d)
        if not cs:
            continue
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod must set runAsNonRoot: true")
        for c in cs:
            w = f"{where} container {c['name']}"
            image = c.get("image", "")
            if image.rsplit(":", 1)[0] not in IMAGES:
                problems.append(f"{w}: image {image} is not one deploy/docker builds")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(kind, {}):
                        problems.append(f"{w}: no resources.{kind}.{r}")
            sc = c.get("securityContext", {})
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{w}: readOnlyRootFilesystem must be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{w}: allowPrivilegeEscalation must be false")
            if image.startswith("vaccel-rs/vaccel-rpc-agent"):
                agents += 1
                args = c.get("args", [])
                listen = args[args.index("-a") + 1] if "-a" in args else None
                for probe in ("livenessProbe", "readinessProbe"):
                    cmd = c.get(probe, {}).get("exec", {}).get("command", [])
                    if cmd[:2] != ["vaccel-rpc-agent", "--check"]:
                        problems.append(f"{w}: {probe} must exec vaccel-rpc-agent --check")
                    elif listen and listen.startswith("unix://") and cmd[2] != listen:
                        problems.append(f"{w}: {probe} checks {cmd[2]}, agent listens on {listen}")
                if listen and listen.startswith("unix://") and listen != SOCKET:
                    problems.append(f"{w}: socket {listen} is not the image's {SOCKET}")
            else:
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                if env.get("VACCEL_PLUGINS") != "libvaccel-rpc.so":
                    problems.append(f"{w}: VACCEL_PLUGINS must be libvaccel-rpc.so")
                if not env.get("VACCEL_RPC_ADDRESS"):
                    problems.append(f"{w}: no VACCEL_RPC_ADDRESS")
    if agents == 0:
        problems.append(f"{path}: no agent container")
    return problems


def main(argv):
    if len(argv) == 3 and argv[1] == "render":
        yaml.safe_dump_all(render(argv[2]), sys.stdout, sort_keys=False)
        return 0
    if len(argv) == 4 and argv[1] == "same":
        a, b = (canonical(load_docs(p)) for p in argv[2:])
        if a != b:
            print(f"{argv[2]} and {argv[3]} differ", file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 3 and argv[1] == "lint":
        problems = [p for f in argv[2:] for p in lint(f)]
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
