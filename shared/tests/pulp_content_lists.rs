//! Router tests for content as the management API's lists show it: the generic content list
//! and creation times, in process on the in-memory store, the embedded store and (feature
//! `moto`) on S3/DynamoDB.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use common::pulp::{Api, PUSH, T};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const ANY: &str = "/pulp/api/v3/content/";

/// The results of one page of a list, which must answer 200.
async fn results(api: &Api, uri: &str) -> Vec<Value> {
    let r = api.get(uri).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.json());
    r.json()["results"].as_array().unwrap().clone()
}

fn hrefs(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["pulp_href"].as_str().unwrap()).collect()
}

/// The id at the end of an href.
fn id_of(href: &str) -> &str {
    href.trim_end_matches('/').rsplit('/').next().unwrap()
}

fn created(item: &Value) -> DateTime<Utc> {
    item["pulp_created"]
        .as_str()
        .unwrap_or_else(|| panic!("no creation time: {item}"))
        .parse()
        .unwrap()
}

async fn repo_href(api: &Api, name: &str) -> String {
    api.get(&format!("{PUSH}?name={name}")).await.json()["results"][0]["pulp_href"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Pulp's generic content list (`GET /content/`) shows the units of every type together, each
/// with the href, PRN and times its own list shows, paged, and selected with pulpcore's
/// filters: by version, by what a version added or removed, by type, by id, in id order.
async fn generic_content_list(api: &Api) {
    let started = Utc::now();
    // Given three pushes: version 1 (v1), version 2 (v2), version 3 (v1 moved to a new image)
    let m1 = api.push_image("gen", "v1", b"layer one").await;
    api.push_image("gen", "v2", b"layer two").await;
    api.push_image("gen", "v1", b"layer three").await;
    let repo = repo_href(api, "gen").await;
    let v = |n: u64| format!("{repo}versions/{n}/");

    // the content of version 2: every type together, each unit as its own list shows it
    let all = results(api, &format!("{ANY}?repository_version={}", v(2))).await;
    let mut typed = Vec::new();
    for path in ["blobs", "manifests", "tags", "signatures"] {
        let uri = format!("/pulp/api/v3/content/container/{path}/?repository_version={}", v(2));
        typed.extend(results(api, &uri).await);
    }
    assert_eq!(all.len(), 8, "2 configs, 2 layers, 2 manifests, 2 tags");
    assert_eq!(hrefs(&all), hrefs(&typed), "by type, each in its own list's order");
    let fields: BTreeSet<&str> = [
        "artifacts",
        "prn",
        "pulp_created",
        "pulp_href",
        "pulp_labels",
        "pulp_last_updated",
        "vuln_report",
    ]
    .into();
    for (g, t) in all.iter().zip(&typed) {
        let keys: BTreeSet<&str> = g.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, fields, "{g}");
        for k in ["prn", "pulp_created", "pulp_last_updated", "pulp_labels", "vuln_report"] {
            assert_eq!(g[k], t[k], "{k} of {g}");
        }
        let at = created(g);
        assert!(at >= started && at <= Utc::now(), "{g}");
        assert_eq!(g["pulp_last_updated"], g["pulp_created"], "content is immutable");
        let artifacts = if g["pulp_href"].as_str().unwrap().contains("/blobs/") {
            json!({ t["digest"].as_str().unwrap(): null })
        } else {
            json!({})
        };
        assert_eq!(g["artifacts"], artifacts, "{g}");
    }

    // by type
    let tags = results(
        api,
        &format!("{ANY}?repository_version={}&pulp_type=container.tag", v(2)),
    )
    .await;
    assert_eq!(hrefs(&tags), hrefs(&typed[6..]));
    let count = |uri: String| async move {
        let r = api.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.json());
        r.json()["count"].as_u64().unwrap()
    };
    let two_types = format!(
        "{ANY}?repository_version={}&pulp_type__in=container.blob,container.manifest",
        v(2)
    );
    assert_eq!(count(two_types).await, 6);
    let both = format!("{ANY}?pulp_type=container.tag&pulp_type__in=container.blob");
    assert_eq!(count(both).await, 0, "both type filters hold");
    for bad in ["pulp_type=container.nope", "pulp_type__in=container.tag,nope"] {
        let r = api.get(&format!("{ANY}?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()[bad.split('=').next().unwrap()].is_array(), "{}", r.json());
    }

    // what version 3 added and removed: the moved tag went, a new image and tag came
    let added = results(api, &format!("{ANY}?repository_version_added={}", v(3))).await;
    let kinds: Vec<&str> = hrefs(&added)
        .iter()
        .map(|h| h.split('/').nth_back(2).unwrap())
        .collect();
    assert_eq!(kinds, ["blobs", "blobs", "manifests", "tags"]);
    let removed = results(api, &format!("{ANY}?repository_version_removed={}", v(3))).await;
    let removed_tags = results(
        api,
        &format!(
            "/pulp/api/v3/content/container/tags/?repository_version_removed={}",
            v(3)
        ),
    )
    .await;
    assert_eq!(hrefs(&removed), hrefs(&removed_tags));
    let tagged = removed_tags[0]["tagged_manifest"].as_str().unwrap();
    assert_eq!(api.get(tagged).await.json()["digest"], m1.as_str());
    let in_and_added = format!("{ANY}?repository_version={}&repository_version_added={}", v(3), v(3));
    assert_eq!(count(in_and_added).await, 4);
    // every unit ever added, of any repository
    assert_eq!(count(format!("{ANY}?limit=1")).await, 12);

    // paged, with absolute links, the pages making up the whole list
    let mut paged = Vec::new();
    let mut next = Some(format!("{ANY}?repository_version={}&limit=3", v(2)));
    while let Some(uri) = next {
        let j = api.get(&uri).await.json();
        assert_eq!(j["count"], 8);
        paged.extend(j["results"].as_array().unwrap().clone());
        next = j["next"]
            .as_str()
            .map(|n| n.strip_prefix("http://reg.example:5000").unwrap().to_owned());
    }
    assert_eq!(hrefs(&paged), hrefs(&all));
    let j = api
        .get(&format!("{ANY}?repository_version={}&limit=3&offset=6", v(2)))
        .await
        .json();
    assert_eq!((j["results"].as_array().unwrap().len(), &j["next"]), (2, &Value::Null));
    assert!(j["previous"].as_str().unwrap().contains("offset=3"), "{j}");

    // ordered by id, either way; no other ordering
    let by_pk = results(api, &format!("{ANY}?repository_version={}&ordering=pk", v(2))).await;
    let ids: Vec<&str> = hrefs(&by_pk).into_iter().map(id_of).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    let by_pk_desc = results(api, &format!("{ANY}?repository_version={}&ordering=-pk", v(2))).await;
    let mut reversed = hrefs(&by_pk);
    reversed.reverse();
    assert_eq!(hrefs(&by_pk_desc), reversed);
    let r = api.get(&format!("{ANY}?ordering=pulp_created")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["ordering"].is_array(), "{}", r.json());

    // by href, PRN and id (all that are given hold)
    let (a, b) = (hrefs(&all)[0], hrefs(&all)[7]);
    let picked = results(api, &format!("{ANY}?pulp_href__in={a},{b}")).await;
    assert_eq!(hrefs(&picked), [a, b]);
    let prn = all[3]["prn"].as_str().unwrap();
    let picked = results(api, &format!("{ANY}?prn__in={prn}")).await;
    assert_eq!(hrefs(&picked), [hrefs(&all)[3]]);
    let picked = results(api, &format!("{ANY}?pulp_id__in={}", id_of(b))).await;
    assert_eq!(hrefs(&picked), [b]);
    assert_eq!(
        count(format!("{ANY}?pulp_id__in={}&pulp_href__in={a}", id_of(b))).await,
        0
    );
    for bad in [
        "pulp_id__in=nope",
        "pulp_href__in=/pulp/api/v3/content/",
        "prn__in=nope",
    ] {
        let r = api.get(&format!("{ANY}?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // fields
    let one = results(
        api,
        &format!(
            "{ANY}?repository_version={}&fields=pulp_href,pulp_created&limit=1",
            v(2)
        ),
    )
    .await;
    let keys: Vec<&String> = one[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["pulp_created", "pulp_href"]);
    let one = results(api, &format!("{ANY}?exclude_fields=artifacts&limit=1")).await;
    assert!(one[0].get("artifacts").is_none() && one[0].get("prn").is_some());

    // refused: a filter Berth does not serve, versions that do not exist, no credentials
    let r = api.get(&format!("{ANY}?orphaned_for=0")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["orphaned_for"].is_array(), "{}", r.json());
    for bad in [v(9), "/pulp/api/v3/nonsense/".to_owned()] {
        let r = api.get(&format!("{ANY}?repository_version={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json()["repository_version"].is_array(), "{}", r.json());
    }
    let r = api.call(Method::GET, ANY, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api.call(Method::GET, ANY, Some(("reader", "reader-pw")), None).await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A tag is a content unit created when it is first added to a version: it shows that time
/// (as `pulp_last_updated` too: content does not change), keeps it when another repository
/// adds it, and a tag moved to another manifest is a new unit with a new time.
async fn tags_show_when_they_were_created(api: &Api) {
    let tags_of = |repo: String| async move {
        let latest = api.get(&repo).await.json()["latest_version_href"]
            .as_str()
            .unwrap()
            .to_owned();
        results(
            api,
            &format!("/pulp/api/v3/content/container/tags/?repository_version={latest}"),
        )
        .await
    };
    let started = Utc::now();
    api.push_image("times", "v1", b"layer t").await;
    let repo = repo_href(api, "times").await;
    let first = tags_of(repo.clone()).await[0].clone();
    let at = created(&first);
    assert!(at >= started && at <= Utc::now(), "{first}");
    assert_eq!(first["pulp_last_updated"], first["pulp_created"]);
    let href = first["pulp_href"].as_str().unwrap();
    assert_eq!(api.get(href).await.json()["pulp_created"], first["pulp_created"]);

    // the same tag of the same image, pushed to another repository later: the same unit
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    api.push_image("times-too", "v1", b"layer t").await;
    let other = tags_of(repo_href(api, "times-too").await).await;
    assert_eq!(hrefs(&other), [href]);
    assert_eq!(other[0]["pulp_created"], first["pulp_created"]);
    assert_eq!(api.get(href).await.json()["pulp_created"], first["pulp_created"]);

    // moved to another image: a new unit, created then
    api.push_image("times", "v1", b"layer u").await;
    let moved = tags_of(repo).await;
    assert_ne!(hrefs(&moved), [href]);
    assert!(created(&moved[0]) > at, "{}", moved[0]);
}

#[tokio::test]
async fn generic_content_list_in_memory() {
    let t = T::new().await;
    generic_content_list(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_content_list_embedded() {
    generic_content_list(&Api::embedded().await).await;
}

#[cfg(feature = "moto")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_content_list_on_aws() {
    generic_content_list(&Api::aws().await).await;
}

#[tokio::test]
async fn tags_show_when_they_were_created_in_memory() {
    let t = T::new().await;
    tags_show_when_they_were_created(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_show_when_they_were_created_embedded() {
    tags_show_when_they_were_created(&Api::embedded().await).await;
}

#[cfg(feature = "moto")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_show_when_they_were_created_on_aws() {
    tags_show_when_they_were_created(&Api::aws().await).await;
}
