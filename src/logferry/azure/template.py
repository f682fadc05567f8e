"""A config's Sentinel sinks → an ARM template creating what they send to (pure; no I/O).

For every ``type: sentinel`` sink with a ``table`` the template holds the custom table (columns
from logferry's table definition), a data collection rule whose stream declaration lists exactly
the columns the sink's encoder sends, and one data collection endpoint shared by all rules. Sinks
that name the same ``dcr_immutable_id`` share one rule with one stream per table, as they will
share one DCR in Azure. The outputs are the values to put back into the config (endpoint, DCR
immutable id, stream per sink).

Sinks without ``table`` send records unchanged for a hand-written DCR transform to shape, so their
columns are unknown here: they are left out and reported in ``Generated.skipped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logferry import __version__
from logferry.config.base import SinkConfig
from logferry.schemas import Column, load_table
from logferry.sinks.sentinel.config import SentinelConfig
from logferry.sinks.sentinel.encoder import select_columns

__all__ = [
    "API_VERSIONS",
    "METRICS_PUBLISHER_ROLE_ID",
    "SCHEMA_URL",
    "Generated",
    "Options",
    "TemplateError",
    "generate",
    "stream_columns",
    "transform_kql",
]

SCHEMA_URL = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
API_VERSIONS = {
    "Microsoft.OperationalInsights/workspaces/tables": "2022-10-01",
    "Microsoft.Insights/dataCollectionEndpoints": "2023-03-11",
    "Microsoft.Insights/dataCollectionRules": "2023-03-11",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
}
#: Built-in role "Monitoring Metrics Publisher": what the app needs on a DCR to send to it.
METRICS_PUBLISHER_ROLE_ID = "3913510d-42f4-4e42-8a64-420c390055eb"

_WORKSPACES = "Microsoft.OperationalInsights/workspaces"
_TABLES = "Microsoft.OperationalInsights/workspaces/tables"
_DCE = "Microsoft.Insights/dataCollectionEndpoints"
_DCR = "Microsoft.Insights/dataCollectionRules"
_ROLE = "Microsoft.Authorization/roleAssignments"
_DESTINATION = "workspace"

#: The workspace API spells datetime "dateTime"; DCR stream declarations spell it "datetime".
_TABLE_TYPES = {"datetime": "dateTime"}
#: Stream declarations have no guid type: guids arrive as strings and the transform converts them.
_STREAM_TYPES = {"guid": "string"}


class TemplateError(ValueError):
    """The sinks cannot be expressed in one template (e.g. one stream declared two ways)."""


@dataclass(frozen=True)
class Options:
    """Defaults of the template's parameters; ``None`` leaves a parameter to the deployment."""

    workspace_name: str | None = None
    location: str | None = None
    dce_name: str = "logferry-dce"
    dcr_name: str = "logferry-dcr"
    #: DCRs of kind Direct carry their own ingestion endpoint, so no DCE is created.
    direct: bool = False


@dataclass(frozen=True)
class Generated:
    template: dict[str, Any]
    #: Sentinel sinks the template leaves out, with the reason (for stderr).
    skipped: dict[str, str] = field(default_factory=dict)
    #: Names of the sinks the template covers.
    covered: tuple[str, ...] = ()


@dataclass
class _Stream:
    name: str
    table: str
    columns: tuple[Column, ...]
    sinks: list[str]


@dataclass
class _Rule:
    first_sink: str
    streams: dict[str, _Stream] = field(default_factory=dict)


def stream_columns(sink: SentinelConfig) -> tuple[Column, ...]:
    """The columns ``sink`` sends, in table order: what its stream declaration must list."""
    assert sink.table is not None
    table = load_table(sink.table)
    selected = select_columns(table, sink.include_event_id)
    return tuple(c for c in selected.columns if c.name in table.mapping)


def generate(sinks: Mapping[str, SinkConfig], options: Options | None = None) -> Generated:
    """The ARM template for the ``sentinel`` sinks among ``sinks`` (other types are ignored)."""
    options = options or Options()
    rules: dict[str, _Rule] = {}
    tables: dict[str, set[str]] = {}
    skipped: dict[str, str] = {}
    placed: dict[str, tuple[str, str]] = {}  # sink → its DCR id and stream, in config order
    for name, sink in sinks.items():
        if not isinstance(sink, SentinelConfig):
            continue
        reason = _unsupported(sink)
        if reason:
            skipped[name] = reason
            continue
        assert sink.table is not None  # _unsupported refuses a sink without one
        rule = rules.setdefault(sink.dcr_immutable_id, _Rule(first_sink=name))
        _add_stream(rule, _Stream(sink.stream, sink.table, stream_columns(sink), [name]))
        placed[name] = (sink.dcr_immutable_id, sink.stream)
        selected = select_columns(load_table(sink.table), sink.include_event_id)
        tables.setdefault(sink.table, set()).update(c.name for c in selected.columns)
    template = _skeleton(options)
    resources: list[dict[str, Any]] = template["resources"]
    for table_name, names in tables.items():
        resources.append(_table(table_name, [c for c in load_table(table_name).columns if c.name in names]))
    if not options.direct and rules:
        resources.append(_endpoint())
    rule_names = {dcr: _rule_name(rule, len(rules)) for dcr, rule in rules.items()}
    for dcr, rule in rules.items():
        resources.append(_rule(rule_names[dcr], rule, options.direct))
        resources.append(_role_assignment(rule_names[dcr]))
    dce_endpoint = f"[reference(variables('dceId'), '{API_VERSIONS[_DCE]}').logsIngestion.endpoint]"
    sink_outputs: dict[str, Any] = {}
    for name, (dcr, stream) in placed.items():
        ref = f"reference({_dcr_id(rule_names[dcr])}, '{API_VERSIONS[_DCR]}')"
        sink_outputs[name] = {
            "endpoint": f"[{ref}.endpoints.logsIngestion]" if options.direct else dce_endpoint,
            "dcr_immutable_id": f"[{ref}.immutableId]",
            "stream_name": stream,
        }
    outputs: dict[str, Any] = template["outputs"]
    if not options.direct:
        outputs["dceLogsIngestionEndpoint"] = {"type": "string", "value": dce_endpoint}
    outputs["sinks"] = {"type": "object", "value": sink_outputs}
    outputs["roleAssignment"] = {
        "type": "string",
        "value": "The app logferry signs in as needs the role Monitoring Metrics Publisher "
        f"({METRICS_PUBLISHER_ROLE_ID}) on each data collection rule; pass its service principal's "
        "object id as principalId to have this template assign it.",
    }
    return Generated(template=template, skipped=skipped, covered=tuple(placed))


def _unsupported(sink: SentinelConfig) -> str | None:
    if sink.table is None:
        return (
            f"no `table`: records are sent unchanged, so their columns are unknown; declare stream "
            f"{sink.stream} and its transform in a DCR by hand (docs/destinations/azure-template.md)"
        )
    if not sink.stream.startswith("Custom-"):
        return f"stream {sink.stream} is a built-in stream; a template can only declare Custom- streams"
    if not sink.table.endswith("_CL"):
        return f"table {sink.table} is not a custom table (_CL); a template can only create custom tables"
    return None


def _add_stream(rule: _Rule, stream: _Stream) -> None:
    known = rule.streams.get(stream.name)
    if known is None:
        rule.streams[stream.name] = stream
        return
    if (known.table, known.columns) != (stream.table, stream.columns):
        raise TemplateError(
            f"sinks {known.sinks[0]} and {stream.sinks[0]} send different columns to stream {stream.name} "
            "of the same DCR; give them the same table and include_event_id, or different DCRs"
        )
    known.sinks.extend(stream.sinks)


def _skeleton(options: Options) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "workspaceName": _param(
            "Name of the existing Log Analytics workspace (in this resource group).", options.workspace_name
        ),
        "location": _param(
            "Region of the data collection resources: the workspace's region.",
            options.location or "[resourceGroup().location]",
        ),
    }
    variables: dict[str, Any] = {
        "workspaceId": f"[resourceId('{_WORKSPACES}', parameters('workspaceName'))]",
        "metricsPublisherRoleId": "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', "
        f"'{METRICS_PUBLISHER_ROLE_ID}')]",
    }
    if not options.direct:
        parameters["dceName"] = _param("Name of the data collection endpoint.", options.dce_name)
        variables["dceId"] = f"[resourceId('{_DCE}', parameters('dceName'))]"
    parameters["dcrName"] = _param(
        "Name of the data collection rule (with several rules: the prefix, followed by '-' and the "
        "first sink's name).",
        options.dcr_name,
    )
    parameters["principalId"] = _param(
        "Object id of the service principal logferry signs in as; when set, it is given the "
        "Monitoring Metrics Publisher role on every DCR. Empty: assign the role yourself.",
        "",
    )
    parameters["principalType"] = {
        **_param("Kind of principal principalId names.", "ServicePrincipal"),
        "allowedValues": ["ServicePrincipal", "User", "Group"],
    }
    return {
        "$schema": SCHEMA_URL,
        "contentVersion": "1.0.0.0",
        "metadata": {"_generator": {"name": "logferry azure template", "version": __version__}},
        "parameters": parameters,
        "variables": variables,
        "resources": [],
        "outputs": {},
    }


def _param(description: str, default: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"type": "string", "metadata": {"description": description}}
    if default is not None:
        p["defaultValue"] = default
    return p


def _table_id(table: str) -> str:
    return f"[resourceId('{_TABLES}', parameters('workspaceName'), '{table}')]"


def _table(name: str, columns: list[Column]) -> dict[str, Any]:
    return {
        "type": _TABLES,
        "apiVersion": API_VERSIONS[_TABLES],
        "name": f"[format('{{0}}/{{1}}', parameters('workspaceName'), '{name}')]",
        "properties": {
            "plan": "Analytics",
            "schema": {
                "name": name,
                "columns": [{"name": c.name, "type": _TABLE_TYPES.get(c.type, c.type)} for c in columns],
            },
        },
    }


def _endpoint() -> dict[str, Any]:
    return {
        "type": _DCE,
        "apiVersion": API_VERSIONS[_DCE],
        "name": "[parameters('dceName')]",
        "location": "[parameters('location')]",
        "properties": {"networkAcls": {"publicNetworkAccess": "Enabled"}},
    }


def _rule_name(rule: _Rule, count: int) -> str:
    """An ARM expression for the rule's name (without brackets)."""
    if count == 1:
        return "parameters('dcrName')"
    return f"format('{{0}}-{{1}}', parameters('dcrName'), '{rule.first_sink}')"


def _dcr_id(name_expr: str) -> str:
    return f"resourceId('{_DCR}', {name_expr})"


def transform_kql(columns: tuple[Column, ...]) -> str:
    """The DCR transform for a stream of ``columns`` into a table of the same columns."""
    guids = [c.name for c in columns if c.type == "guid"]
    if not guids:
        return "source"
    return "source | extend " + ", ".join(f"{g} = toguid({g})" for g in guids)


def _rule(name_expr: str, rule: _Rule, direct: bool) -> dict[str, Any]:
    streams = list(rule.streams.values())
    properties: dict[str, Any] = {
        "streamDeclarations": {
            s.name: {
                "columns": [{"name": c.name, "type": _STREAM_TYPES.get(c.type, c.type)} for c in s.columns]
            }
            for s in streams
        },
        "destinations": {
            "logAnalytics": [{"workspaceResourceId": "[variables('workspaceId')]", "name": _DESTINATION}]
        },
        "dataFlows": [
            {
                "streams": [s.name],
                "destinations": [_DESTINATION],
                "transformKql": transform_kql(s.columns),
                "outputStream": f"Custom-{s.table}",
            }
            for s in streams
        ],
    }
    depends = list(dict.fromkeys(_table_id(s.table) for s in streams))
    resource: dict[str, Any] = {
        "type": _DCR,
        "apiVersion": API_VERSIONS[_DCR],
        "name": f"[{name_expr}]",
        "location": "[parameters('location')]",
    }
    if direct:
        resource["kind"] = "Direct"
    else:
        properties = {"dataCollectionEndpointId": "[variables('dceId')]", **properties}
        depends.append("[variables('dceId')]")
    resource["dependsOn"] = depends
    resource["properties"] = properties
    return resource


def _role_assignment(name_expr: str) -> dict[str, Any]:
    dcr = _dcr_id(name_expr)
    return {
        "condition": "[not(empty(parameters('principalId')))]",
        "type": _ROLE,
        "apiVersion": API_VERSIONS[_ROLE],
        "name": f"[guid({dcr}, parameters('principalId'), variables('metricsPublisherRoleId'))]",
        "scope": f"[format('{_DCR}/{{0}}', {name_expr})]",
        "dependsOn": [f"[{dcr}]"],
        "properties": {
            "roleDefinitionId": "[variables('metricsPublisherRoleId')]",
            "principalId": "[parameters('principalId')]",
            "principalType": "[parameters('principalType')]",
        },
    }
