//! The OpenAPI 3.1 document served at `/v1/openapi.json`, derived from the
//! route table the router is built from.

use serde_json::{Value, json};

/// An endpoint as the document lists it: path, method, one-line summary.
/// The router is built from the same table ([`crate::routes::Endpoint`]), so
/// the two cannot drift.
#[derive(Clone, Copy, Debug)]
pub struct Doc {
    pub path: &'static str,
    pub method: &'static str,
    pub summary: &'static str,
}

pub fn document(endpoints: &[Doc]) -> Value {
    let error = json!({
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    let mut paths = serde_json::Map::new();
    for Doc {
        path,
        method,
        summary,
    } in endpoints
    {
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
