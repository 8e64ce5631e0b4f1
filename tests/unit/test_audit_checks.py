"""The check documents: Polaris's exact built-in list, its default severities, and load errors."""

from __future__ import annotations

import pytest
import yaml

from pipeline.audit.checks import BUILTIN_CHECKS_DIR, builtin_checks, load_checks, parse_check
from pipeline.audit.schema_ext import PolarisValidator, go_regex, parse_quantity
from pipeline.errors import AuditError

# Fairwinds Polaris's built-in checks and their default severities (pkg/config/default.yaml).
POLARIS_DEFAULTS = {
    "deploymentMissingReplicas": "warning", "priorityClassNotSet": "warning", "tagNotSpecified": "danger",
    "pullPolicyNotAlways": "warning", "readinessProbeMissing": "warning", "livenessProbeMissing": "warning",
    "metadataAndInstanceMismatched": "warning", "pdbDisruptionsIsZero": "warning",
    "missingPodDisruptionBudget": "warning", "topologySpreadConstraint": "warning",
    "hpaMaxAvailability": "warning", "hpaMinAvailability": "warning",
    "pdbMinAvailableGreaterThanOrEqualToHPAMinReplicas": "warning",
    "cpuRequestsMissing": "warning", "cpuLimitsMissing": "warning", "memoryRequestsMissing": "warning",
    "memoryLimitsMissing": "warning",
    "automountServiceAccountToken": "warning", "hostIPCSet": "danger", "hostPathSet": "warning",
    "hostProcess": "warning", "hostPIDSet": "danger", "linuxHardening": "warning",
    "missingNetworkPolicy": "warning", "notReadOnlyRootFilesystem": "warning",
    "privilegeEscalationAllowed": "danger", "procMount": "warning", "runAsRootAllowed": "danger",
    "runAsPrivileged": "danger", "dangerousCapabilities": "danger", "insecureCapabilities": "warning",
    "hostNetworkSet": "danger", "hostPortSet": "warning", "tlsSettingsMissing": "warning",
    "sensitiveContainerEnvVar": "danger", "sensitiveConfigmapContent": "danger",
    "clusterrolePodExecAttach": "danger", "rolePodExecAttach": "danger",
    "clusterrolebindingPodExecAttach": "danger", "rolebindingClusterRolePodExecAttach": "danger",
    "rolebindingRolePodExecAttach": "danger", "clusterrolebindingClusterAdmin": "danger",
    "rolebindingClusterAdminClusterRole": "danger", "rolebindingClusterAdminRole": "danger",
}


def test_builtin_checks_are_exactly_polaris_list():
    checks = builtin_checks()
    assert sorted(c.id for c in checks) == sorted(POLARIS_DEFAULTS)
    assert len(checks) == 44


def test_default_severities_and_categories_match_polaris():
    for check in builtin_checks():
        assert check.severity == POLARIS_DEFAULTS[check.id], check.id
        assert check.category in ("Security", "Efficiency", "Reliability")
        assert check.success_message and check.failure_message


def test_every_file_is_named_after_its_id():
    for path in BUILTIN_CHECKS_DIR.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["id"] == path.stem


def _write(tmp_path, name, text):
    directory = tmp_path / "checks"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(text)
    return directory


GOOD_HEAD = "successMessage: ok\nfailureMessage: bad\ncategory: Security\ntarget: Container\n"


def test_invalid_schema_is_a_load_error_naming_the_file(tmp_path):
    directory = _write(tmp_path, "broken", GOOD_HEAD + "schema:\n  type: objekt\n")
    with pytest.raises(AuditError) as error:
        load_checks(directory)
    assert str(directory / "broken.yaml") in str(error.value)
    assert "invalid JSON Schema" in str(error.value)


def test_uncompilable_pattern_is_a_load_error(tmp_path):
    directory = _write(tmp_path, "regex", GOOD_HEAD + "schema:\n  properties:\n    image:\n      pattern: '(unclosed'\n")
    with pytest.raises(AuditError, match=r"regex\.yaml: check regex: pattern '\(unclosed'"):
        load_checks(directory)


def test_document_missing_a_key_is_a_load_error(tmp_path):
    directory = _write(tmp_path, "nomsg", "category: Security\ntarget: Container\nschema: {}\n")
    with pytest.raises(AuditError, match=r"nomsg\.yaml: \(root\): 'successMessage' is a required property"):
        load_checks(directory)


def test_bad_resource_bound_and_unsupported_template_are_load_errors():
    with pytest.raises(AuditError, match="not a Kubernetes quantity"):
        parse_check(yaml.safe_load(GOOD_HEAD + "schema: {properties: {x: {resourceMinimum: lots}}}"), "q", "q.yaml")
    with pytest.raises(AuditError, match="not supported"):
        parse_check(yaml.safe_load(GOOD_HEAD + "schemaString: '{{ if .x }}a: b{{ end }}'"), "t", "t.yaml")


def test_file_name_must_match_id(tmp_path):
    directory = _write(tmp_path, "one", "id: two\n" + GOOD_HEAD + "schema: {}\n")
    with pytest.raises(AuditError, match="does not match the file name"):
        load_checks(directory)


@pytest.mark.parametrize("text,value", [
    ("100m", "0.1"), ("1", "1"), ("1Gi", str(2**30)), ("512Mi", str(512 * 2**20)), ("1.5", "1.5"),
    ("2k", "2000"), ("1e3", "1000"), (250, "250"),
])
def test_quantities(text, value):
    from decimal import Decimal

    assert parse_quantity(text) == Decimal(value)


def test_resource_keywords_compare_by_value():
    validator = PolarisValidator({"resourceMinimum": "100m", "resourceMaximum": "1Gi"})
    assert validator.is_valid("250m")
    assert validator.is_valid("0.1")
    assert not validator.is_valid("50m")
    assert validator.is_valid("1024Mi")
    assert not validator.is_valid("2Gi")
    assert not validator.is_valid("lots")


def test_go_inline_flags_anywhere():
    assert go_regex("^(?i)all$").search("ALL")
    validator = PolarisValidator({"pattern": "^(?i)sys_admin$"})
    assert validator.is_valid("SYS_ADMIN")
    assert not validator.is_valid("NET_ADMIN")
