//! Berth's OpenAPI document against what real Pulp declares for the operations the `pulp` CLI
//! uses. pulp-glue checks every parameter against the document before it sends a request, so a
//! parameter Berth leaves out, or declares with another type, items, enum, style or explode than
//! Pulp, makes the CLI refuse or send something Pulp's clients would not.
//!
//! The expectation is `openapi/pulp_cli_operations.json`, generated from the document of the
//! pulpcore and pulp_container versions Berth reports (see its `about`), with the query parameters
//! pulp-cli 0.41.1 sends for its `container`, `task`, `worker`, `status`, `orphan` and `content`
//! commands. Checked, for each of those operations and each other operation Berth serves:
//! - the operation is there (unless marked `not_served`), with Pulp's method and path;
//! - every path parameter, and every query parameter pulp-cli sends, is declared as Pulp does;
//! - every query parameter Berth declares is one Pulp declares, declared as Pulp does;
//! - a request body where Pulp takes one, required as there; the success status among Pulp's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::pulp::{REMOTES, REPOS, T};
use http::Method;
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("openapi/pulp_cli_operations.json");

/// Operations Berth serves that Pulp does not have, and why.
const BERTH_ONLY: &[(&str, &str)] = &[
    (
        "repositories_container_container_push_delete",
        "push repositories are deleted through the API too (Pulp deletes them only with their distribution)",
    ),
    (
        "task_schedules_create",
        "schedules are made through the API (pulpcore's are made by plugins' code only)",
    ),
    ("task_schedules_update", "schedules are changed through the API"),
    ("task_schedules_partial_update", "schedules are changed through the API"),
    ("task_schedules_delete", "schedules are removed through the API"),
];

/// operationId -> (method, path key, operation).
fn operations(doc: &Value) -> BTreeMap<String, (String, String, Value)> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, o) in item.as_object().unwrap() {
            if let Some(id) = o.get("operationId").and_then(Value::as_str) {
                ops.insert(id.to_owned(), (method.to_ascii_uppercase(), path.clone(), o.clone()));
            }
        }
    }
    ops
}

fn norm_schema(s: &Value) -> Value {
    let mut out = json!({"type": s["type"]});
    if let Some(f) = s.get("format") {
        out["format"] = f.clone();
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        let mut e: Vec<String> = e.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect();
        e.sort();
        out["enum"] = json!(e);
    }
    if let Some(i) = s.get("items") {
        out["items"] = norm_schema(i);
    }
    out
}

/// A parameter as the fixture records it: OpenAPI's defaults for style and explode made explicit.
fn norm_param(p: &Value) -> Value {
    let location = p["in"].as_str().unwrap_or_default();
    let default_style = if matches!(location, "query" | "cookie") {
        "form"
    } else {
        "simple"
    };
    let style = p.get("style").and_then(Value::as_str).unwrap_or(default_style);
    json!({
        "in": location,
        "required": p.get("required").and_then(Value::as_bool).unwrap_or(false),
        "schema": norm_schema(&p["schema"]),
        "style": style,
        "explode": p.get("explode").and_then(Value::as_bool).unwrap_or(style == "form"),
    })
}

fn parameters(o: &Value) -> BTreeMap<String, Value> {
    o["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| matches!(p["in"].as_str(), Some("query" | "path")))
        .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), norm_param(p)))
        .collect()
}

/// A normalised parameter in one line: `in`, type, style and explode, required.
fn describe(p: &Value) -> String {
    format!(
        "{} {} {} explode={}{}",
        p["in"].as_str().unwrap_or_default(),
        type_of(&p["schema"]),
        p["style"].as_str().unwrap_or_default(),
        p["explode"],
        if p["required"] == true { " required" } else { "" }
    )
}

fn type_of(s: &Value) -> String {
    let mut t = s["type"].as_str().unwrap_or("?").to_owned();
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        t = format!("{t}({f})");
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        t = format!("{t}[{} choices]", e.len());
    }
    if let Some(i) = s.get("items") {
        t = format!("{t}<{}>", type_of(i));
    }
    t
}

fn choices(s: &Value) -> BTreeSet<String> {
    let e = s.get("enum").or_else(|| s.get("items").and_then(|i| i.get("enum")));
    e.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

/// How Berth's declaration `have` differs from Pulp's `want`.
fn contrast(have: &Value, want: &Value) -> String {
    let (a, b) = (describe(have), describe(want));
    let mut s = if a == b {
        format!("{a}, but other choices")
    } else {
        format!("{a}; Pulp declares {b}")
    };
    let (ca, cb) = (choices(&have["schema"]), choices(&want["schema"]));
    let extra: Vec<_> = ca.difference(&cb).collect();
    let lacking: Vec<_> = cb.difference(&ca).collect();
    if !extra.is_empty() {
        s += &format!("; choices Pulp lacks: {extra:?}");
    }
    if !lacking.is_empty() && !ca.is_empty() {
        s += &format!("; choices missing: {lacking:?}");
    }
    s
}

/// Every difference between Berth's document and the fixture, one line each.
fn differences(fixture: &Value, doc: &Value) -> Vec<String> {
    let berth = operations(doc);
    let mut out = Vec::new();
    for (id, want) in fixture["operations"].as_object().unwrap() {
        let cli = &want["pulp_cli"];
        let Some((method, path, o)) = berth.get(id) else {
            if cli.is_object() && want.get("not_served").is_none() {
                out.push(format!(
                    "{id}: operation missing ({} {}); pulp-cli: {}",
                    want["method"].as_str().unwrap(),
                    want["path"].as_str().unwrap(),
                    cli["from"].as_str().unwrap()
                ));
            }
            continue;
        };
        if method != want["method"].as_str().unwrap() || path != want["path"].as_str().unwrap() {
            out.push(format!(
                "{id}: {method} {path}, Pulp has {} {}",
                want["method"], want["path"]
            ));
        }
        let have = parameters(o);
        let pulp = want["parameters"].as_object().unwrap();
        let sent: BTreeSet<&str> = cli["sends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let path_params = pulp.iter().filter(|(_, p)| p["in"] == "path").map(|(n, _)| n.as_str());
        for name in sent.iter().copied().chain(path_params) {
            if !have.contains_key(name) {
                out.push(format!(
                    "{id}: parameter `{name}` missing; Pulp declares {}",
                    describe(&pulp[name])
                ));
            }
        }
        for (name, p) in &have {
            match pulp.get(name) {
                None => out.push(format!("{id}: parameter `{name}` is not one Pulp declares")),
                Some(w) if w != p => out.push(format!("{id}: parameter `{name}`: {}", contrast(p, w))),
                Some(_) => {}
            }
        }
        let body = o
            .get("requestBody")
            .map(|b| json!({"required": b["required"].as_bool().unwrap_or(false)}));
        if body.as_ref().unwrap_or(&Value::Null) != &want["request_body"] {
            out.push(format!(
                "{id}: request body {body:?}; Pulp declares {}",
                want["request_body"]
            ));
        }
        let statuses: Vec<&str> = want["responses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for code in o["responses"].as_object().unwrap().keys() {
            if !statuses.contains(&code.as_str()) {
                out.push(format!("{id}: answers {code}; Pulp declares {statuses:?}"));
            }
        }
    }
    for (id, (method, path, _)) in &berth {
        if fixture["operations"].get(id).is_none() && !BERTH_ONLY.iter().any(|(b, _)| b == id) {
            out.push(format!("{id} ({method} {path}): not an operation Pulp declares"));
        }
    }
    out
}

#[tokio::test]
async fn the_document_declares_what_pulp_declares_for_the_operations_pulp_cli_uses() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let t = T::new().await;
    let doc = t
        .call(Method::GET, "/pulp/api/v3/docs/api.json", None, None)
        .await
        .json();
    assert_eq!(doc["info"]["x-pulp-app-versions"]["core"], fixture["versions"]["core"]);
    assert_eq!(
        doc["info"]["x-pulp-app-versions"]["container"],
        fixture["versions"]["container"]
    );
    let diffs = differences(&fixture, &doc);
    assert!(
        diffs.is_empty(),
        "{} differences from Pulp's document:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

/// The operations whose schemas the fixture records (the pull-through kinds) name Pulp's
/// component schemas for their bodies, and those schemas have Pulp's properties and required
/// fields: pulp-glue builds and checks a request body from them.
#[tokio::test]
async fn the_documented_schemas_are_pulps() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let t = T::new().await;
    let doc = t
        .call(Method::GET, "/pulp/api/v3/docs/api.json", None, None)
        .await
        .json();
    let berth = operations(&doc);
    let named = |v: &Value| {
        v["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            .map(str::to_owned)
    };
    let mut checked = 0;
    for (id, want) in fixture["operations"].as_object().unwrap() {
        let Some(schemas) = want.get("schemas") else { continue };
        let (_, _, o) = berth.get(id).unwrap_or_else(|| panic!("{id} is not served"));
        assert_eq!(
            o.get("requestBody").and_then(named),
            schemas["request"].as_str().map(str::to_owned),
            "{id}: request body"
        );
        let status = want["responses"][0].as_str().unwrap();
        assert_eq!(
            named(&o["responses"][status]),
            schemas["response"].as_str().map(str::to_owned),
            "{id}: response"
        );
        checked += 1;
    }
    assert_eq!(checked, 12, "the pull-through operations");
    for (name, want) in fixture["schemas"].as_object().unwrap() {
        let have = &doc["components"]["schemas"][name];
        let props: BTreeSet<&str> = have["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} is not declared"))
            .keys()
            .map(String::as_str)
            .collect();
        let pulp: BTreeSet<&str> = want["properties"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(props, pulp, "{name}: properties");
        let required: BTreeSet<&str> = have["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let pulp: BTreeSet<&str> = want["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, pulp, "{name}: required");
    }
}

/// The check itself: a list parameter declared as a plain string (the tag list's `digest`, which
/// pulp_container's `TagFilter` declares as a comma-separated list) is a difference.
#[tokio::test]
async fn a_list_parameter_declared_as_a_string_is_a_difference() {
    let fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let t = T::new().await;
    let mut doc = t
        .call(Method::GET, "/pulp/api/v3/docs/api.json", None, None)
        .await
        .json();
    let before = differences(&fixture, &doc);
    for p in doc["paths"]["/pulp/api/v3/content/container/tags/"]["get"]["parameters"]
        .as_array_mut()
        .unwrap()
    {
        if p["name"] == "digest" {
            *p = json!({"name": "digest", "in": "query", "schema": {"type": "string"}});
        }
    }
    let after = differences(&fixture, &doc);
    let new: Vec<_> = after.iter().filter(|d| !before.contains(d)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].starts_with("content_container_tags_list: parameter `digest`: query string"),
        "{}",
        new[0]
    );
}

/// The filters pulp-cli sends that Berth declares are applied: label selections, time ranges,
/// the manifest flags and `prn__in`; those Berth does not serve are refused, never ignored.
#[tokio::test]
async fn the_filters_pulp_cli_sends_are_applied() {
    let t = T::new().await;
    let names = |r: &common::http::Resp| -> Vec<String> {
        let mut v: Vec<String> = r.json()["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    // Given repositories and a remote with labels
    for (name, labels) in [
        ("a", json!({"env": "prod"})),
        ("b", json!({"env": "dev"})),
        ("c", json!({})),
    ] {
        let r = t.post(REPOS, json!({"name": name, "pulp_labels": labels})).await;
        assert_eq!(r.status, http::StatusCode::CREATED);
    }
    // Then label selections pick as pulpcore's do
    for (sel, want) in [
        ("env=prod", vec!["a"]),
        ("!env", vec!["c"]),
        ("env~PR", vec!["a"]),
        ("env", vec!["a", "b"]),
        ("env!=prod", vec!["b"]),
    ] {
        let r = t.get(&format!("{REPOS}?pulp_label_select={}", urlencode(sel))).await;
        assert_eq!(names(&r), want, "{sel}");
    }
    let r = t.get(&format!("{REPOS}?pulp_label_select=%3Dx")).await;
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
    assert!(r.json()["pulp_label_select"].is_array());

    let r = t
        .post(
            REMOTES,
            json!({"name": "r", "url": "https://example.com", "upstream_name": "x", "pulp_labels": {"k": "v"}}),
        )
        .await;
    assert_eq!(r.status, http::StatusCode::CREATED);
    for (q, want) in [
        ("pulp_label_select=k%3Dv", 1),
        ("pulp_label_select=k%3Dw", 0),
        ("pulp_last_updated__gte=2000-01-01T00:00:00", 1),
        ("pulp_last_updated__gte=2999-01-01T00:00:00Z", 0),
        ("pulp_last_updated__lte=2999-01-01", 1),
        ("pulp_last_updated__lte=2000-01-01T00:00:00%2B02:00", 0),
    ] {
        assert_eq!(t.get(&format!("{REMOTES}?{q}")).await.json()["count"], want, "{q}");
    }
    let r = t.get(&format!("{REMOTES}?pulp_last_updated__gte=yesterday")).await;
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);

    // Tasks: time ranges, correlation-id search; no task has a worker, parent or group
    let href = t.get(REPOS).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned();
    t.task(t.delete(&href).await).await;
    let tasks = "/pulp/api/v3/tasks/";
    let all = t.get(tasks).await.json()["count"].as_u64().unwrap();
    assert!(all >= 1);
    let cid = t.get(tasks).await.json()["results"][0]["logging_cid"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = uuid::Uuid::new_v4();
    for (q, want) in [
        ("started_at__gte=2000-01-01T00:00:00".to_owned(), all),
        ("finished_at__lte=2000-01-01T00:00:00Z".to_owned(), 0),
        (format!("logging_cid__contains={}", &cid[..cid.len().min(4)]), all),
        ("logging_cid__contains=%20no%20such".to_owned(), 0),
        (format!("worker={id}"), 0),
        (format!("parent_task={id}"), 0),
        (format!("task_group={id}"), 0),
    ] {
        assert_eq!(t.get(&format!("{tasks}?{q}")).await.json()["count"], want, "{q}");
    }

    // Content: no unit has labels, and no manifest is bootable or a flatpak
    t.push_image("img", "v1", b"layer").await;
    let tags = "/pulp/api/v3/content/container/tags/";
    let manifests = "/pulp/api/v3/content/container/manifests/";
    let one_tag = t.get(tags).await.json()["results"][0].clone();
    assert_eq!(t.get(&format!("{tags}?pulp_label_select=!k")).await.json()["count"], 1);
    assert_eq!(t.get(&format!("{tags}?pulp_label_select=k")).await.json()["count"], 0);
    assert_eq!(
        t.get(&format!("{tags}?prn__in={}", one_tag["prn"].as_str().unwrap()))
            .await
            .json()["count"],
        1
    );
    assert_eq!(
        t.get(&format!("{tags}?prn__in=prn:container.tag:{id}")).await.json()["count"],
        0
    );
    assert_eq!(t.get(&format!("{manifests}?is_bootable=true")).await.json()["count"], 0);
    assert_eq!(t.get(&format!("{manifests}?is_flatpak=false")).await.json()["count"], 1);
    let r = t.get(&format!("{manifests}?is_bootable=maybe")).await;
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
    let r = t.get(&format!("{manifests}?orphaned_for=0")).await;
    assert_eq!(r.status, http::StatusCode::BAD_REQUEST);
    // the generic list takes pulpcore's and pulp_file's types as choices, which select nothing
    assert_eq!(
        t.get("/pulp/api/v3/content/?pulp_type=file.file").await.json()["count"],
        0
    );
    assert_eq!(
        t.get("/pulp/api/v3/content/?pulp_type__in=file.file,container.tag")
            .await
            .json()["count"],
        1
    );
}

fn urlencode(s: &str) -> String {
    s.replace('!', "%21").replace('=', "%3D").replace('~', "%7E")
}
