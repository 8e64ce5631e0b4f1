"""Fields of AWS CloudTrail records (one ``Records[]`` item), as Falco's cloudtrail plugin names them.

``ct.request.<name>`` / ``ct.response.<name>`` / ``ct.additionaleventdata.<name>``
read ``requestParameters`` / ``responseElements`` / ``additionalEventData``
with a case-insensitive key (the plugin's names are lower case, AWS's are
camel case); bare ``ct.request`` is the whole object as JSON text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable


from pipeline.fields.coerce import iso8601_to_ns, ns_to_iso8601, to_bool, to_int, to_str
from pipeline.fields.declare import SourceRegistry, parse_table
from pipeline.fields.document import dig, json_pointer_extractor, never_raising
from pipeline.fields.registry import MISSING, BoundField, FieldDef
from pipeline.json_bytes import json_bytes

SOURCE = "aws_cloudtrail"
_M = MISSING


def _text(value: Any) -> Any:
    if value is _M:
        return _M
    if value.__class__ in (dict, list):
        return json_bytes(value).decode()
    return to_str(value)


def _path(*path: str, coerce: Callable[[Any], Any] = _text) -> Callable[[Any], Any]:
    return lambda e: _M if (v := dig(e, *path)) is _M else coerce(v)


def _user(e: Any) -> Any:
    """The plugin's ``ct.user``: the user name, else the session issuer's, else the ARN's last part."""
    identity = dig(e, "userIdentity")
    if identity is _M:
        return _M
    for path in (("userName",), ("sessionContext", "sessionIssuer", "userName")):
        name = dig(identity, *path)
        if name.__class__ is str and name:
            return name
    if dig(identity, "type") == "Root":
        return "root"
    arn = dig(identity, "arn")
    if arn.__class__ is str and arn:
        return arn.rsplit("/", 1)[-1]
    return _text(dig(identity, "principalId"))


def _lookup_ci(obj: Any, name: str) -> Any:
    if obj.__class__ is not dict:
        return _M
    value = obj.get(name, _M)
    if value is not _M:
        return value
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return value
    return _M


def _nested(section: str, arg: str) -> Callable[[Any], Any]:
    steps = arg.split(".")

    def extract(e: Any) -> Any:
        obj = dig(e, section)
        for step in steps:
            obj = _lookup_ci(obj, step)
        return _M if obj is None else _text(obj)

    return extract


def _time_ns(e: Any) -> Any:
    text = dig(e, "eventTime")
    return iso8601_to_ns(text) if text.__class__ is str else _M


def _s3_uri(e: Any) -> Any:
    bucket, key = dig(e, "requestParameters", "bucketName"), dig(e, "requestParameters", "key")
    if bucket.__class__ is not str:
        return _M
    return f"s3://{bucket}/{key}" if key.__class__ is str else f"s3://{bucket}"


_SIMPLE: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ct.id": ("STRING", _path("eventID")),
    "ct.error": ("STRING", _path("errorCode")),
    "ct.errormessage": ("STRING", _path("errorMessage")),
    "ct.time": ("ABSTIME", _time_ns),
    "ct.src": ("STRING", _path("eventSource")),
    "ct.shortsrc": ("STRING", _path("eventSource", coerce=lambda v: _text(v).removesuffix(".amazonaws.com") if v.__class__ is str else _M)),
    "ct.name": ("STRING", _path("eventName")),
    "ct.user": ("STRING", _user),
    "ct.user.accountid": ("STRING", _path("userIdentity", "accountId")),
    "ct.user.identitytype": ("STRING", _path("userIdentity", "type")),
    "ct.user.principalid": ("STRING", _path("userIdentity", "principalId")),
    "ct.user.arn": ("STRING", _path("userIdentity", "arn")),
    "ct.user.mfaauthenticated": ("BOOL", _path("userIdentity", "sessionContext", "attributes", "mfaAuthenticated", coerce=to_bool)),
    "ct.region": ("STRING", _path("awsRegion")),
    "ct.response.subnetid": ("STRING", _path("responseElements", "subnetId")),
    "ct.response.reservationid": ("STRING", _path("responseElements", "reservationId")),
    "ct.srcip": ("STRING", _path("sourceIPAddress")),
    "ct.useragent": ("STRING", _path("userAgent")),
    "ct.info": ("STRING", lambda e: _M if (n := dig(e, "eventName")) is _M else f"{_user(e) if _user(e) is not _M else ''} {n}".strip()),
    "ct.managementevent": ("BOOL", _path("managementEvent", coerce=to_bool)),
    "ct.readonly": ("BOOL", _path("readOnly", coerce=to_bool)),
    "ct.requestid": ("STRING", _path("requestID")),
    "ct.eventtype": ("STRING", _path("eventType")),
    "ct.eventcategory": ("STRING", _path("eventCategory")),
    "ct.apiversion": ("STRING", _path("apiVersion")),
    "ct.resources": ("STRING", _path("resources")),
    "ct.recipientaccountid": ("STRING", _path("recipientAccountId")),
    "ct.serviceeventdetails": ("STRING", _path("serviceEventDetails")),
    "ct.sharedeventid": ("STRING", _path("sharedEventID")),
    "ct.vpcendpointid": ("STRING", _path("vpcEndpointId")),
    "s3.bucket": ("STRING", _path("requestParameters", "bucketName")),
    "s3.key": ("STRING", _path("requestParameters", "key")),
    "s3.host": ("STRING", _path("requestParameters", "Host")),
    "s3.uri": ("STRING", _s3_uri),
    "s3.bytes.in": ("INT", _path("additionalEventData", "bytesTransferredIn", coerce=to_int)),
    "s3.bytes.out": ("INT", _path("additionalEventData", "bytesTransferredOut", coerce=to_int)),
    "ec2.imageid": ("STRING", _path("requestParameters", "imageId")),
    "json.obj": ("STRING", lambda e: json_bytes(e).decode()),
    "json.rawtime": ("ABSTIME", _time_ns),
    "evt.time": ("ABSTIME", _time_ns),
    "evt.time.iso8601": ("STRING", lambda e: _M if (ns := _time_ns(e)) is _M else ns_to_iso8601(ns)),
    "evt.num": ("INT", lambda e: _M),
    "evt.source": ("STRING", lambda e: SOURCE),
    "evt.pluginname": ("STRING", lambda e: "cloudtrail"),
    "evt.plugininfo": ("STRING", lambda e: _SIMPLE["ct.info"][1](e)),
}
_SECTIONS = {"ct.request": "requestParameters", "ct.response": "responseElements", "ct.additionaleventdata": "additionalEventData"}


@lru_cache(maxsize=1)
def registry() -> SourceRegistry:
    lines = [f"{name} {kind}" for name, (kind, _) in _SIMPLE.items()]
    lines += [f"{name} STRING key?" for name in _SECTIONS]
    lines.append("json.value STRING ptr")
    fields, optional = parse_table("\n".join(lines))

    def bind(definition: FieldDef, arg: str | None, key: str) -> BoundField:
        name = definition.name
        if name == "json.value":
            extract = json_pointer_extractor(arg)
        elif name in _SECTIONS:
            extract = _path(_SECTIONS[name]) if arg is None else _nested(_SECTIONS[name], arg)
        else:
            extract = _SIMPLE[name][1]
        return BoundField(definition, arg, key, never_raising(extract))

    return SourceRegistry(SOURCE, fields, bind, optional)
