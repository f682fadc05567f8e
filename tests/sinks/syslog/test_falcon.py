"""The shipped falcon_cef mapping writes the Falcon SIEM Connector's CEF (specs/crowdstrike.md §5)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from logferry.formats.cef import parse_cef
from logferry.formats.mapping import RecordMapper, load_mapping, value_text
from logferry.formats.syslog import SyslogParser
from logferry.sources.crowdstrike.mapping import MAPPINGS, mapper_for
from tests.sinks.syslog.conftest import build_sink

# A DetectionSummaryEvent envelope with the fields the spec documents (§4).
DETECTION: dict[str, Any] = {
    "metadata": {
        "customerIDString": "cid-0001",
        "offset": 123456,
        "eventType": "DetectionSummaryEvent",
        "eventCreationTime": 1686845212400,
        "version": "1.0",
    },
    "event": {
        "ProcessStartTime": 1686845200,
        "ProcessEndTime": 0,
        "ProcessId": 4242,
        "ParentProcessId": 4000,
        "ComputerName": "WS-017",
        "UserName": "CORP\\alice",
        "DetectName": "Credential Dumping",
        "DetectDescription": "A process tried to read lsass memory.\nBlocked.",
        "Severity": 4,
        "SeverityName": "High",
        "FileName": "procdump64.exe",
        "FilePath": "\\Device\\HarddiskVolume3\\Tools",
        "CommandLine": "procdump64.exe -ma lsass.exe out=C:\\tmp\\l.dmp | more",
        "SHA256String": "a" * 64,
        "MD5String": "b" * 32,
        "SHA1String": "c" * 40,
        "MachineDomain": "corp.example",
        "FalconHostLink": "https://falcon.crowdstrike.com/activity/detections/detail/x?y=1&z=2",
        "SensorId": "sensor-9",
        "LocalIP": "10.0.0.17",
        "Tactic": "Credential Access",
        "Technique": "OS Credential Dumping",
        "Objective": "Gain Access",
        "PatternDispositionDescription": "Prevention, process killed.",
        "PatternDispositionValue": 2048,
    },
}

AUDIT: dict[str, Any] = {
    "metadata": {"offset": 7, "eventType": "UserActivityAuditEvent", "eventCreationTime": 1686845212000},
    "event": {
        "UserId": "bob@example.com",
        "UserIp": "192.0.2.1",
        "OperationName": "detection_update",
        "ServiceName": "detections",
        "Success": True,
        "UTCTimestamp": 1686845212,
    },
}


def message_of(line: bytes) -> str:
    message = SyslogParser().parse(line, received=datetime.now(UTC))["message"]
    assert isinstance(message, str)
    return message


def cef_of(line: bytes) -> dict[str, Any]:
    return parse_cef(message_of(line))


def test_a_detection_becomes_the_connectors_cef_line(tmp_path: Path) -> None:
    sink = build_sink(tmp_path, host="127.0.0.1", body="cef", mapping="falcon_cef", app_name="falcon")
    [line] = sink.encode([DETECTION])
    message = message_of(line)
    assert message.startswith(
        "CEF:0|CrowdStrike|FalconHost|1.0|DetectionSummaryEvent|DetectionSummaryEvent|4|"
    )
    e = DETECTION["event"]
    assert cef_of(line)["extensions"] == {
        "cat": e["Tactic"],
        "externalId": e["SensorId"],
        "cn1": "4000",
        "cn2": "4242",
        "dhost": e["ComputerName"],
        "duser": e["UserName"],
        "msg": e["DetectDescription"],
        "fname": e["FileName"],
        "filePath": e["FilePath"],
        "fileHash": e["MD5String"],
        "dntdom": e["MachineDomain"],
        "cs5": e["CommandLine"],
        "cs6": e["FalconHostLink"],
        "tactic": e["Tactic"],
        "technique": e["Technique"],
        "objective": e["Objective"],
        "patternDisposition": e["PatternDispositionDescription"],
        "outcome": "2048",
        "cn3": "123456",
        "cn3Label": "Offset",
        "rt": "1686845212400",
    }
    # The escapes the connector's template declares: escape_ext for '=', '\' and the newline.
    assert "msg=A process tried to read lsass memory.\\nBlocked." in message
    assert "cs5=procdump64.exe -ma lsass.exe out\\=C:\\\\tmp\\\\l.dmp | more" in message


@pytest.mark.parametrize("envelope", [DETECTION, AUDIT], ids=["detection", "audit"])
def test_the_mapping_file_matches_the_crowdstrike_sources_tables(envelope: dict[str, Any]) -> None:
    """falcon_cef.yaml and the crowdstrike source's output_format 'siem' name the same fields alike."""
    etype = envelope["metadata"]["eventType"]
    siem = mapper_for("siem", {etype: MAPPINGS[etype]})(envelope)
    cef = RecordMapper(load_mapping("falcon_cef"))(envelope)
    assert cef["signature_id"] == siem.pop("signatureId") and cef["name"] == siem.pop("name")
    if "severity" in siem:
        assert cef["severity"] == value_text(siem.pop("severity"))
    assert list(cef["extensions"].items()) == [(k, value_text(v)) for k, v in siem.items()]


def test_records_the_source_already_mapped_give_the_same_line(tmp_path: Path) -> None:
    """The crowdstrike source maps to the connector's names by default; the default section keeps them."""
    sink = build_sink(tmp_path, host="127.0.0.1", body="cef", mapping="falcon_cef", timestamp_field="rt")
    siem = mapper_for("siem")(DETECTION)
    raw_line, siem_line = sink.encode([DETECTION, siem])
    assert cef_of(siem_line) == cef_of(raw_line)


@pytest.mark.parametrize("output_format", ["raw", "siem"])
def test_event_types_without_a_section_still_get_a_signature_name_and_severity(
    tmp_path: Path, output_format: str
) -> None:
    """Types the connector's tables do not cover (incidents, remote response, ...) pass through the
    source as their envelope; the header must still say what they are."""
    incident = {
        "metadata": {"eventType": "IncidentSummaryEvent", "offset": 9, "eventCreationTime": 1686845212400},
        "event": {"IncidentId": "inc:1", "FineScore": 4.2, "HostName": "WS-1"},
    }
    remote = {
        "metadata": {"eventType": "RemoteResponseSessionStartEvent", "offset": 10},
        "event": {"Severity": 2, "HostnameField": "WS-2"},
    }
    sink = build_sink(tmp_path, host="127.0.0.1", body="cef", mapping="falcon_cef")
    first, second = (
        cef_of(line) for line in sink.encode([mapper_for(output_format)(r) for r in (incident, remote)])
    )
    assert (first["signature_id"], first["name"], first["severity"]) == ("IncidentSummaryEvent",) * 2 + ("5",)
    assert (second["signature_id"], second["name"], second["severity"]) == (
        "RemoteResponseSessionStartEvent",
    ) * 2 + ("2",)
    assert '"IncidentId":"inc:1"' in first["extensions"]["event"]


def test_an_audit_event_the_source_mapped_gets_the_default_severity(tmp_path: Path) -> None:
    sink = build_sink(tmp_path, host="127.0.0.1", body="cef", mapping="falcon_cef")
    [line] = sink.encode([mapper_for("siem")(AUDIT)])
    assert cef_of(line)["severity"] == "5"
