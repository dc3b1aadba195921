//! The OpenAPI 3 document the `pulp` CLI reads, generated from the operation table
//! ([`super::ops::OPS`]) so routes and document cannot drift.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`.

use serde_json::{json, Map, Value};

use super::ops::{all, Op, ParamType};

/// The spec key of an operation: its pattern, or `{href_param}` plus the rest.
fn spec_path(op: &Op) -> String {
    match op.href {
        Some((name, prefix)) => format!("{{{name}}}{}", &op.pattern[prefix.len()..]),
        None => op.pattern.to_owned(),
    }
}

fn schema(t: ParamType) -> Value {
    match t {
        ParamType::String => json!({"type": "string"}),
        ParamType::Integer => json!({"type": "integer"}),
        ParamType::Number => json!({"type": "number"}),
        ParamType::Boolean => json!({"type": "boolean"}),
        ParamType::DateTime => json!({"type": "string", "format": "date-time"}),
        ParamType::Uuid => json!({"type": "string", "format": "uuid"}),
        ParamType::StringArray | ParamType::Fields => json!({"type": "array", "items": {"type": "string"}}),
        ParamType::Choice(values) => json!({"type": "string", "enum": values}),
        ParamType::ChoiceArray(values) | ParamType::MultiChoice(values) => {
            json!({"type": "array", "items": {"type": "string", "enum": values}})
        }
        ParamType::UuidArray => json!({"type": "array", "items": {"type": "string", "format": "uuid"}}),
        ParamType::DateTimeArray => json!({"type": "array", "items": {"type": "string", "format": "date-time"}}),
        ParamType::Ordering(fields) => {
            let values: Vec<String> = fields.iter().flat_map(|f| [format!("-{f}"), (*f).to_owned()]).collect();
            json!({"type": "array", "items": {"type": "string", "enum": values}})
        }
    }
}

/// The OpenAPI 3 document the `pulp` CLI reads.
pub fn openapi(core_version: &str, container_version: &str) -> Value {
    let mut paths = Map::new();
    for op in all() {
        let mut params = Vec::new();
        if let Some((name, _)) = op.href {
            params.push(json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
        }
        for (name, t) in op.query {
            let mut p = json!({"name": name, "in": "query", "schema": schema(*t)});
            if t.is_array() {
                p["style"] = json!("form");
                p["explode"] = json!(t.is_exploded());
            }
            params.push(p);
        }
        let mut o = json!({
            "operationId": op.operation_id,
            "tags": [op.tag],
            "parameters": params,
            "security": if op.public { json!([{}]) } else { json!([{"basicAuth": []}]) },
            "responses": {
                op.status.to_string(): {
                    "description": "",
                    "content": {"application/json": {"schema": {"type": "object"}}}
                }
            }
        });
        if op.status == 204 {
            o["responses"] = json!({"204": {"description": "No response body"}});
        }
        if op.body {
            o["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        if let Some((request, response)) = super::ops_pull_through::schemas(op.operation_id) {
            let named = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
            if op.body && !request.is_empty() {
                o["requestBody"]["content"]["application/json"]["schema"] = named(request);
            }
            o["responses"][op.status.to_string()]["content"]["application/json"]["schema"] = named(response);
        }
        let entry = paths.entry(spec_path(op)).or_insert_with(|| Value::Object(Map::new()));
        entry[op.method.as_str().to_ascii_lowercase()] = o;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Berth API (Pulp-compatible)",
            "version": "v3",
            "description": "The management API of Berth, compatible with Pulp's container plugin.",
            "x-pulp-app-versions": {"core": core_version, "container": container_version},
            "x-pulp-domain-enabled": false
        },
        "servers": [],
        "paths": paths,
        "components": {
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
            "schemas": super::ops_pull_through::components(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_operation_with_href_parameters() {
        let doc = openapi("3.85.0", "2.26.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut n = 0;
        for (key, item) in paths {
            for (_, o) in item.as_object().unwrap() {
                n += 1;
                let href_params: Vec<_> = o["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .collect();
                assert!(href_params.len() <= 1, "{key}: at most one path parameter");
                for p in href_params {
                    assert_eq!(p["required"], true);
                    assert!(key.contains(&format!("{{{}}}", p["name"].as_str().unwrap())));
                }
            }
        }
        assert_eq!(n, all().count());
        assert!(paths.contains_key("{container_container_repository_href}sync/"));
        assert!(paths.contains_key("{container_container_repository_version_href}"));
        let tasks = &paths["/pulp/api/v3/tasks/"]["get"]["parameters"];
        for p in [
            "state__in",
            "reserved_resources__in",
            "exclusive_resources__in",
            "shared_resources__in",
            "fields",
        ] {
            assert!(tasks.as_array().unwrap().iter().any(|x| x["name"] == p), "{p}");
        }
        assert_eq!(paths["/pulp/api/v3/status/"]["get"]["security"], json!([{}]));
    }
}
