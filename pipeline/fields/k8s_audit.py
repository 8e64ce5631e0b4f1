"""Fields of Kubernetes audit events (``audit.k8s.io/v1`` and ``v1beta1`` Event objects).

The ``ka.*`` names and meanings follow Falco's k8saudit plugin; ``jevt.*``
reads the raw JSON (``jevt.value[/objectRef/name]`` is an RFC 6901 pointer).
``ka.target.resource_subresource`` (``pods/exec``, or ``pods``) is Peregrine's own: a rule
using it does not load in Falco.
Per-container fields exist for ``containers``, ``initContainers`` and
``ephemeralContainers`` (``ka.req.pod.initContainers.privileged``); a
list-valued field gives one item per container/volume/rule, skipping items
without the value, and is MISSING when the request has none at all.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


from pipeline.fields.coerce import iso8601_to_ns, ns_to_iso8601, to_bool, to_int, to_str
from pipeline.fields.declare import SourceRegistry, parse_table
from pipeline.fields.document import dig, json_pointer_extractor, never_raising
from pipeline.fields.registry import MISSING, BoundField, FieldDef
from pipeline.json_bytes import json_bytes

SOURCE = "k8s_audit"
_M = MISSING


def _json(value: Any) -> Any:
    return _M if value is _M else json_bytes(value).decode()


def _listed(values: list) -> Any:
    return values if values else _M


def _spec(e: Any) -> Any:
    spec = dig(e, "requestObject", "spec")
    return _M if spec.__class__ is not dict else spec


def _pod_spec(e: Any) -> Any:
    """The pod spec of a pod, or of a workload's pod template."""
    spec = _spec(e)
    if spec is _M:
        return _M
    template = dig(spec, "template", "spec")
    if template.__class__ is dict:
        return template
    jobs = dig(spec, "jobTemplate", "spec", "template", "spec")
    return jobs if jobs.__class__ is dict else spec


def _containers(e: Any, kind: str) -> list:
    spec = _pod_spec(e)
    items = dig(spec, kind) if spec is not _M else _M
    return [c for c in items if c.__class__ is dict] if items.__class__ is list else []


def _repository(image: str) -> str:
    """``docker.io/library/nginx:1.25@sha256:..`` -> ``docker.io/library/nginx``."""
    image = image.split("@", 1)[0]
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def _eff(container: dict, pod: Any, key: str) -> Any:
    own = dig(container, "securityContext", key)
    return own if own is not _M else (dig(pod, "securityContext", key) if pod is not _M else _M)


def _per_container(kind: str, read: Callable[[dict, Any], Any], coerce: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def extract(e: Any) -> Any:
        pod = _pod_spec(e)
        out = []
        for c in _containers(e, kind):
            v = read(c, pod)
            if v is not _M:
                if v.__class__ is list:
                    out.extend(x for x in map(coerce, v) if x is not _M)
                else:
                    v = coerce(v)
                    if v is not _M:
                        out.append(v)
        return _listed(out)

    return extract


_CONTAINER_READS: dict[str, tuple[str, Callable[[dict, Any], Any], Callable[[Any], Any]]] = {
    "image": ("STRING", lambda c, p: dig(c, "image"), to_str),
    "image.repository": ("STRING", lambda c, p: _repository(c["image"]) if c.get("image").__class__ is str else _M, to_str),
    "name": ("STRING", lambda c, p: dig(c, "name"), to_str),
    "privileged": ("BOOL", lambda c, p: dig(c, "securityContext", "privileged"), to_bool),
    "allow_privilege_escalation": ("BOOL", lambda c, p: dig(c, "securityContext", "allowPrivilegeEscalation"), to_bool),
    "read_only_fs": ("BOOL", lambda c, p: dig(c, "securityContext", "readOnlyRootFilesystem"), to_bool),
    "run_as_user": ("INT", lambda c, p: dig(c, "securityContext", "runAsUser"), to_int),
    "eff_run_as_user": ("INT", lambda c, p: _eff(c, p, "runAsUser"), to_int),
    "run_as_group": ("INT", lambda c, p: dig(c, "securityContext", "runAsGroup"), to_int),
    "eff_run_as_group": ("INT", lambda c, p: _eff(c, p, "runAsGroup"), to_int),
    "proc_mount": ("STRING", lambda c, p: dig(c, "securityContext", "procMount"), to_str),
    "add_capabilities": ("STRING", lambda c, p: dig(c, "securityContext", "capabilities", "add"), to_str),
    "host_port": ("INT", lambda c, p: [port.get("hostPort") for port in c.get("ports") or () if port.__class__ is dict and port.get("hostPort") is not None], to_int),
}
_CONTAINER_KINDS = ("containers", "initContainers", "ephemeralContainers")


def _volumes(e: Any) -> list:
    spec = _pod_spec(e)
    items = dig(spec, "volumes") if spec is not _M else _M
    return [v for v in items if v.__class__ is dict] if items.__class__ is list else []


def _hostpaths(e: Any) -> Any:
    return _listed([p for v in _volumes(e) if (p := dig(v, "hostPath", "path")).__class__ is str])


def _flex_drivers(e: Any) -> Any:
    return _listed([d for v in _volumes(e) if (d := dig(v, "flexVolume", "driver")).__class__ is str])


def _volume_types(e: Any) -> Any:
    return _listed([k for v in _volumes(e) for k in v if k != "name"])


def _rules(e: Any) -> list:
    rules = dig(e, "requestObject", "rules")
    return [r for r in rules if r.__class__ is dict] if rules.__class__ is list else []


def _rules_part(key: str) -> Callable[[Any], Any]:
    def extract(e: Any) -> Any:
        return _listed([x for r in _rules(e) for x in (r.get(key) or ()) if x.__class__ is str])

    return extract


def _subjects(e: Any) -> Any:
    subjects = dig(e, "requestObject", "subjects")
    if subjects.__class__ is not list:
        return _M
    return _listed([s["name"] for s in subjects if s.__class__ is dict and s.get("name").__class__ is str])


def _uri_param(name: str) -> Callable[[Any], Any]:
    def extract(e: Any) -> Any:
        uri = dig(e, "requestURI")
        if uri.__class__ is not str:
            return _M
        values = parse_qs(urlsplit(uri).query, keep_blank_values=True).get(name)
        return values[0] if values else _M

    return extract


def _rawtime(e: Any) -> Any:
    for key in ("stageTimestamp", "requestReceivedTimestamp"):
        text = dig(e, key)
        if text.__class__ is str:
            return iso8601_to_ns(text)
    return _M


def _path(*path: str, coerce: Callable[[Any], Any] = to_str) -> Callable[[Any], Any]:
    def extract(e: Any) -> Any:
        v = dig(e, *path)
        return _M if v is _M else coerce(v)

    return extract


def _list_path(*path: str, coerce: Callable[[Any], Any] = to_str) -> Callable[[Any], Any]:
    def extract(e: Any) -> Any:
        v = dig(e, *path)
        if v.__class__ is not list:
            return _M
        return _listed([x for x in map(coerce, v) if x is not _M])

    return extract


def _resource_subresource(e: Any) -> Any:
    """``pods/exec`` for a request to a subresource, ``pods`` for one to the resource itself, as an
    RBAC rule and an audit policy name them; MISSING without a resource (a non-resource URL).
    Peregrine's: Falco's k8saudit plugin has only the two parts, and a correlation's ``match``
    never equates two absent values, so one field must carry both (RBAC self-escalation)."""
    resource = to_str(dig(e, "objectRef", "resource"))
    if resource is _M:
        return _M
    subresource = to_str(dig(e, "objectRef", "subresource"))
    return resource if subresource is _M or subresource == "" else f"{resource}/{subresource}"


def _when_resource(resource: str, inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def extract(e: Any) -> Any:
        return inner(e) if dig(e, "objectRef", "resource") == resource else _M

    return extract


_ann = lambda key: _path("annotations", key)  # noqa: E731
_SIMPLE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ka.auditid": ("STRING", _path("auditID")),
    "ka.stage": ("STRING", _path("stage")),
    "ka.auth.decision": ("STRING", _ann("authorization.k8s.io/decision")),
    "ka.auth.reason": ("STRING", _ann("authorization.k8s.io/reason")),
    "ka.auth.openshift.scc": ("STRING", _ann("openshift.io/scc")),
    "ka.user.name": ("STRING", _path("user", "username")),
    "ka.user.groups": ("STRING list", _list_path("user", "groups")),
    "ka.impuser.name": ("STRING", _path("impersonatedUser", "username")),
    "ka.verb": ("STRING", _path("verb")),
    "ka.uri": ("STRING", _path("requestURI")),
    "ka.target.name": ("STRING", _path("objectRef", "name")),
    "ka.target.namespace": ("STRING", _path("objectRef", "namespace")),
    "ka.target.resource": ("STRING", _path("objectRef", "resource")),
    "ka.target.subresource": ("STRING", _path("objectRef", "subresource")),
    "ka.target.resource_subresource": ("STRING", _resource_subresource),
    "ka.target.pod.name": ("STRING", _when_resource("pods", _path("objectRef", "name"))),
    "ka.req.binding.subjects": ("STRING list", _subjects),
    "ka.req.binding.role": ("STRING", _path("requestObject", "roleRef", "name")),
    "ka.req.configmap.name": ("STRING", _when_resource("configmaps", _path("objectRef", "name"))),
    "ka.req.configmap.obj": ("STRING", _when_resource("configmaps", lambda e: _json(dig(e, "requestObject", "data")))),
    "ka.req.pod.host_ipc": ("BOOL", lambda e: to_bool(dig(_pod_spec(e), "hostIPC")) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.host_network": ("BOOL", lambda e: to_bool(dig(_pod_spec(e), "hostNetwork")) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.host_pid": ("BOOL", lambda e: to_bool(dig(_pod_spec(e), "hostPID")) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.run_as_user": ("INT", lambda e: to_int(dig(_pod_spec(e), "securityContext", "runAsUser")) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.run_as_group": ("INT", lambda e: to_int(dig(_pod_spec(e), "securityContext", "runAsGroup")) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.fs_group": ("INT", lambda e: to_int(dig(_pod_spec(e), "securityContext", "fsGroup")) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.supplemental_groups": ("INT list", lambda e: _list_path("securityContext", "supplementalGroups", coerce=to_int)(_pod_spec(e)) if _pod_spec(e) is not _M else _M),
    "ka.req.pod.volumes.hostpath": ("STRING list", _hostpaths),
    "ka.req.pod.volumes.flexvolume_drivers": ("STRING list", _flex_drivers),
    "ka.req.pod.volumes.volume_type": ("STRING list", _volume_types),
    "ka.req.role.rules": ("STRING list", lambda e: _listed([json_bytes(r).decode() for r in _rules(e)])),
    "ka.req.role.rules.apiGroups": ("STRING list", _rules_part("apiGroups")),
    "ka.req.role.rules.nonResourceURLs": ("STRING list", _rules_part("nonResourceURLs")),
    "ka.req.role.rules.verbs": ("STRING list", _rules_part("verbs")),
    "ka.req.role.rules.resources": ("STRING list", _rules_part("resources")),
    "ka.req.service.type": ("STRING", lambda e: to_str(dig(_spec(e), "type")) if _spec(e) is not _M else _M),
    "ka.req.service.ports": ("STRING list", lambda e: _listed([json_bytes(p).decode() for p in (dig(_spec(e), "ports") if _spec(e) is not _M else None) or () if p.__class__ is dict]) if dig(_spec(e), "ports").__class__ is list else _M),
    "ka.resp.name": ("STRING", _path("responseObject", "metadata", "name")),
    "ka.response.code": ("STRING", _path("responseStatus", "code")),
    "ka.response.reason": ("STRING", _path("responseStatus", "reason")),
    "ka.useragent": ("STRING", _path("userAgent")),
    "ka.sourceips": ("STRING list", _list_path("sourceIPs")),
    "ka.cluster.name": ("STRING", _path("annotations", "cluster.name")),
    "jevt.obj": ("STRING", lambda e: json_bytes(e).decode() if e.__class__ is dict else _M),
    "jevt.rawtime": ("ABSTIME", _rawtime),
    "jevt.time": ("STRING", lambda e: t if (t := dig(e, "stageTimestamp")).__class__ is str else _M),
    "jevt.time.iso8601": ("STRING", lambda e: _M if (ns := _rawtime(e)) is _M else ns_to_iso8601(ns)),
    # Falco's generic fields of a plugin event: its time is the audit event's stageTimestamp
    # (correlations read evt.time on every source).
    "evt.time": ("ABSTIME", _rawtime),
    "evt.time.iso8601": ("STRING", lambda e: _M if (ns := _rawtime(e)) is _M else ns_to_iso8601(ns)),
    "evt.source": ("STRING", lambda e: SOURCE),
}
# Deprecated single-container forms Falco still offers: the first container's value.
_FIRST_CONTAINER = {
    "ka.req.container.image": "image",
    "ka.req.container.image.repository": "image.repository",
    "ka.req.container.privileged": "privileged",
    "ka.req.container.host_network": None,
}
_WITH_ARG = """
ka.uri.param STRING key
ka.req.binding.subject.has_name BOOL key
ka.req.volume.hostpath BOOL key
jevt.value STRING ptr
"""


def _table() -> tuple[str, dict[str, Callable[[Any], Any]]]:
    lines = [_WITH_ARG]
    extractors: dict[str, Callable[[Any], Any]] = {}
    for name, (kind, extract) in _SIMPLE.items():
        lines.append(f"{name} {kind}")
        extractors[name] = extract
    for kind in _CONTAINER_KINDS:
        for sub, (type_name, read, coerce) in _CONTAINER_READS.items():
            name = f"ka.req.pod.{kind}.{sub}"
            lines.append(f"{name} {type_name} list")
            extractors[name] = _per_container(kind, read, coerce)
    for name, sub in _FIRST_CONTAINER.items():
        if sub is None:
            lines.append(f"{name} BOOL")
            extractors[name] = extractors["ka.req.pod.host_network"]
            continue
        type_name = _CONTAINER_READS[sub][0]
        lines.append(f"{name} {type_name}")
        every = extractors[f"ka.req.pod.containers.{sub}"]
        extractors[name] = lambda e, _every=every: _M if (v := _every(e)) is _M else v[0]
    return "\n".join(lines), extractors


def _with_arg(definition: FieldDef, arg: str) -> Callable[[Any], Any]:
    name = definition.name
    if name == "jevt.value":
        return json_pointer_extractor(arg)
    if name == "ka.uri.param":
        return _uri_param(arg)
    if name == "ka.req.binding.subject.has_name":
        return lambda e: _M if (s := _subjects(e)) is _M else arg in s
    # ka.req.volume.hostpath[/etc]: does a hostPath volume mount this path (or below it)?
    prefix = arg.rstrip("*").rstrip("/")
    return lambda e: _M if (paths := _hostpaths(e)) is _M else any(p == arg or p.startswith(prefix + "/") or (prefix == "" and p.startswith("/")) for p in paths)


@lru_cache(maxsize=1)
def registry() -> SourceRegistry:
    table, extractors = _table()
    fields, optional = parse_table(table)

    def bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
        extract = extractors[definition.name] if arg is None else _with_arg(definition, arg)
        return BoundField(definition, arg, key, never_raising(extract))

    return SourceRegistry(SOURCE, fields, bind, optional)
