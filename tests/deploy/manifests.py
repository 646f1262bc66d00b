"""Reading deploy/ without a cluster: YAML files, kustomizations, rendered overlays, CLI args.

`render(overlay)` is a small kustomize for what deploy/k8s uses (resources, components,
strategic-merge patches by kind and name, namespace, images): enough to check names,
ports, probes and arguments across files. test_manifests.py checks it against `kubectl
kustomize` wherever kubectl is installed.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("cpu-demo", "gpu")
KUSTOMIZATION = "kustomization.yaml"


def _package_find() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]


def package_folders() -> list[str]:
    """Folders at the repository root that the package is built from: pyproject's find `include`
    (each a top-level package) and its other `where` roots (proto/, holding laneway_proto)."""
    find = _package_find()
    return [p.rstrip("*") for p in find["include"]] + [w for w in find["where"] if w != "."]


def first_party_modules() -> list[str]:
    """Import names of every package Laneway installs: the root packages and those under proto/."""
    find = _package_find()
    stubs = [d.name for w in find["where"] if w != "." for d in sorted((ROOT / w).iterdir())
             if (d / "__init__.py").exists()]
    return [p.rstrip("*") for p in find["include"]] + stubs


def yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob(KUSTOMIZATION))


def referenced_files(kustomization: Path) -> list[tuple[str, Path]]:
    """(what, path) for every file or directory a kustomization names."""
    k = yaml.safe_load(kustomization.read_text())
    here = kustomization.parent
    refs = [("resource", here / r) for r in k.get("resources", [])]
    refs += [("component", here / c) for c in k.get("components", [])]
    refs += [("patch", here / p["path"]) for p in k.get("patches", []) if "path" in p]
    for gen in k.get("configMapGenerator", []) + k.get("secretGenerator", []):
        for f in gen.get("files", []):
            refs.append((f"{gen['name']} file", here / f.split("=", 1)[-1]))
    return refs


@dataclass
class Rendered:
    docs: list[dict]

    def get(self, kind: str, name: str) -> dict:
        found = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def of_kind(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d["kind"] == kind]

    def workloads(self) -> list[dict]:
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet")]


def render(overlay: str) -> Rendered:
    docs, images, namespace = _accumulate(K8S / "overlays" / overlay)
    for d in docs:
        if namespace and d["kind"] != "Namespace":
            d["metadata"]["namespace"] = namespace
        for c in containers(d):
            name, _, tag = c["image"].partition(":")
            if name in images:
                new = images[name]
                c["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
    return Rendered(docs)


def _accumulate(directory: Path) -> tuple[list[dict], dict[str, dict], str | None]:
    k = yaml.safe_load((directory / KUSTOMIZATION).read_text())
    docs: list[dict] = []
    images: dict[str, dict] = {}
    namespace = k.get("namespace")
    for ref in k.get("resources", []) + k.get("components", []):
        path = directory / ref
        if path.is_dir():
            sub_docs, sub_images, sub_ns = _accumulate(path)
            docs += sub_docs
            images.update(sub_images)
            namespace = namespace or sub_ns
        else:
            docs += load_all(path)
    for gen in k.get("configMapGenerator", []):
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]},
                     "data": {f.split("=", 1)[0]: (directory / f.split("=", 1)[-1]).read_text()
                              for f in gen.get("files", [])}})
    for gen in k.get("secretGenerator", []):
        data = dict(lit.split("=", 1) for lit in gen.get("literals", []))
        data.update({f.split("=", 1)[0]: (directory / f.split("=", 1)[-1]).read_text() for f in gen.get("files", [])})
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]}, "stringData": data})
    for patch in k.get("patches", []):
        for p in load_all(directory / patch["path"]):
            target = [d for d in docs if d["kind"] == p["kind"] and d["metadata"]["name"] == p["metadata"]["name"]]
            assert len(target) == 1, f"{directory}: patch for {p['kind']}/{p['metadata']['name']} matches nothing"
            _merge(target[0], p)
    images.update({i["name"]: i for i in k.get("images", [])})
    return copy.deepcopy(docs), images, namespace


def _merge(base: dict, patch: dict) -> None:
    """Strategic merge, as far as deploy/ needs it: maps merge, lists of named maps merge by name."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif (isinstance(value, list) and isinstance(base.get(key), list) and value
              and all(isinstance(v, dict) and "name" in v for v in value)):
            by_name = {item.get("name"): item for item in base[key] if isinstance(item, dict)}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    base[key].append(item)
        else:
            base[key] = value


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"] if "template" in workload.get("spec", {}) else {}


def containers(doc: dict) -> list[dict]:
    return pod_spec(doc).get("containers", [])


def container_args(container: dict, placeholders: dict[str, str] | None = None) -> list[str]:
    """command[1:] + args with Kubernetes' $(VAR) expanded from the container's env."""
    env = {e["name"]: e.get("value", (placeholders or {}).get(e["name"], f"<{e['name']}>"))
           for e in container.get("env", [])}
    words = [*container.get("command", [])[1:], *container.get("args", [])]
    return [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), w) for w in words]


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


@dataclass(frozen=True)
class Dockerfile:
    path: Path
    instructions: list[tuple[str, str]]  # (INSTRUCTION, rest), continuation lines joined

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        text = re.sub(r"\\\n", " ", path.read_text())
        out = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                out.append((word.upper(), rest.strip()))
        return cls(path, out)

    def all(self, instruction: str) -> list[str]:
        return [rest for word, rest in self.instructions if word == instruction]

    def exec_form(self, instruction: str) -> list[str]:
        """The last INSTRUCTION's JSON array (CMD, ENTRYPOINT, HEALTHCHECK ... CMD [...])."""
        rest = self.all(instruction)[-1]
        return yaml.safe_load(rest[rest.index("["):])

    def arg_default(self, name: str) -> str | None:
        for rest in self.all("ARG"):
            key, _, default = rest.partition("=")
            if key == name and default:
                return default
        return None

    def env(self) -> dict[str, str]:
        out = {}
        for rest in self.all("ENV"):
            out.update(dict(w.split("=", 1) for w in shlex.split(rest)))
        return out


def iter_env_names(doc: dict) -> Iterator[tuple[str, dict]]:
    for c in containers(doc):
        for e in c.get("env", []):
            yield e["name"], c
