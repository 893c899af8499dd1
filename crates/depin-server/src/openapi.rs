//! The OpenAPI 3.1 document served at `/v1/openapi.json`. Written by hand to
//! stay small; a test checks that every route in the router is listed here.

use serde_json::{Value, json};

pub const PATHS: &[(&str, &str, &str)] = &[
    ("/healthz", "get", "Liveness: `ok`."),
    ("/metrics", "get", "Prometheus metrics in text format."),
    ("/v1/openapi.json", "get", "This document."),
    (
        "/v1/policy",
        "get",
        "The reward policy in force, with its id.",
    ),
    (
        "/v1/devices",
        "post",
        "Register a device: body is a DeviceCertificate envelope signed by the operator key.",
    ),
    (
        "/v1/devices/revoke",
        "post",
        "Revoke a device key: body is a Revocation envelope signed by its operator.",
    ),
    (
        "/v1/devices/rotate",
        "post",
        "Replace a device key: body is a KeyRotation envelope signed by its operator.",
    ),
    (
        "/v1/devices/{device}",
        "get",
        "A device: registration, latest telemetry, rewards and reason counts.",
    ),
    (
        "/v1/operators/{operator}/devices",
        "get",
        "An operator's devices.",
    ),
    (
        "/v1/reports",
        "post",
        "Submit a ReportBatch of device-signed envelopes; returns a verdict per report.",
    ),
    ("/v1/epochs", "get", "Closed epochs."),
    (
        "/v1/epochs/{epoch}",
        "get",
        "One closed epoch: emission, minted, per-sector totals, claim root.",
    ),
    (
        "/v1/balances/{account}",
        "get",
        "Ledger balance of an account (operator hex key or ledger account key).",
    ),
    (
        "/v1/claims/{epoch}",
        "get",
        "The epoch's claim tree as an OpenZeppelin StandardMerkleTree dump.",
    ),
    (
        "/v1/claims/{epoch}/{account}",
        "get",
        "An account's cumulative claim with its Merkle proof.",
    ),
    (
        "/v1/economics/rates",
        "get",
        "Current reward rates per sector and H3 cell from recent epochs.",
    ),
    (
        "/v1/operators/{operator}/settings",
        "get",
        "An operator's stored cost settings, with the signature they were stored under.",
    ),
    (
        "/v1/operators/{operator}/settings",
        "put",
        "Store an operator's cost settings (JSON). Signed: X-Depin-Timestamp (unix ms) and X-Depin-Signature (hex ed25519 by the operator key over depin_economics::operator::settings_signing_message).",
    ),
    (
        "/v1/operators/{operator}/economics",
        "get",
        "Per device and total: earnings and costs so far, net, payback progress and a projection.",
    ),
    (
        "/v1/operators/{operator}/alerts",
        "get",
        "Alerts per device: offline, low_uptime, overheating, outdated_firmware, earnings_below_median, unknown_hardware.",
    ),
];

pub fn document() -> Value {
    let error = json!({
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    let mut paths = serde_json::Map::new();
    for (path, method, summary) in PATHS {
        let mut params = Vec::new();
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
            }
        }
        let mut op = json!({
            "summary": summary,
            "parameters": params,
            "responses": {"200": {"description": "OK"}, "4XX": error.clone(), "5XX": error.clone()},
        });
        if *method == "post" {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            });
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "depin coordinator", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string", "description": "machine-readable code"}, "message": {"type": "string"}}
        }}}
    })
}
