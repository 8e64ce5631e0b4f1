"""Alerts: what a matched rule produces, formatted as Falco formats it."""

from pipeline.alerts.alert import Alert
from pipeline.alerts.builder import AlertBuilder
from pipeline.alerts.falco_json import alert_uuid, falco_json, falco_json_dict, iso8601_ns
from pipeline.alerts.output import NA, OutputFormat

__all__ = ["NA", "Alert", "AlertBuilder", "OutputFormat", "alert_uuid", "falco_json", "falco_json_dict", "iso8601_ns"]
