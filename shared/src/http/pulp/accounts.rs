//! Users, groups, group members, roles and role assignments (pulpcore's `users/`, `groups/`,
//! `roles/`), and the role actions of container objects and groups (`list_roles/`,
//! `add_role/`, `remove_role/`, `my_permissions/`), with Pulp's shapes.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `http`: parse, one service call, render.

use http::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::errors::{json_response, ApiError};
use super::ops::{parse_href, RoleOp};
use super::ops_accounts::{ORDER_ASSIGNMENTS, ORDER_GROUPS, ORDER_ROLES, ORDER_USERS};
use super::render::{self, ts, API};
use super::{lookups, Answer, Ctx};
use crate::services::accounts::roles::Role;
use crate::services::accounts::{role_id, NestedRoles, RoleFilter, UserChange, UserFilter, UserView};
use crate::services::{GroupFilter, NameFilter, Sort, SortKey};
use crate::store::{Group, Holder, ObjectKind, ObjectRef, RepositoryKind, RoleAssignment};

pub fn user_href(id: u64) -> String {
    format!("{API}users/{id}/")
}

pub fn group_href(id: u64) -> String {
    format!("{API}groups/{id}/")
}

fn role_href(name: &str) -> String {
    format!("{API}roles/{}/", role_id(name))
}

fn holder_href(h: Holder) -> String {
    match h {
        Holder::User(id) => user_href(id),
        Holder::Group(id) => group_href(id),
    }
}

/// The href of an object roles are given on.
pub fn object_href(o: ObjectRef) -> String {
    match o.kind {
        ObjectKind::Namespace => render::namespace_href(o.id),
        ObjectKind::Distribution => render::dist_href(o.id),
        ObjectKind::Repository => render::repo_href(o.id, RepositoryKind::Mirror),
        ObjectKind::PushRepository => render::repo_href(o.id, RepositoryKind::Push),
        ObjectKind::Remote => render::remote_href(o.id),
        ObjectKind::Group => group_href(o.group_id().unwrap_or(0)),
    }
}

fn object_prn(o: ObjectRef) -> String {
    match o.kind {
        ObjectKind::Namespace => format!("prn:container.containernamespace:{}", o.id),
        ObjectKind::Distribution => format!("prn:container.containerdistribution:{}", o.id),
        ObjectKind::Repository => format!("prn:container.containerrepository:{}", o.id),
        ObjectKind::PushRepository => format!("prn:container.containerpushrepository:{}", o.id),
        ObjectKind::Remote => format!("prn:container.containerremote:{}", o.id),
        ObjectKind::Group => format!("prn:core.group:{}", o.group_id().unwrap_or(0)),
    }
}

/// The object an href names (`None`: it names none roles can be given on).
pub fn parse_object(href: &str) -> Option<ObjectRef> {
    const KINDS: [(&str, ObjectKind); 5] = [
        ("/pulp/api/v3/pulp_container/namespaces/{id}/", ObjectKind::Namespace),
        (
            "/pulp/api/v3/distributions/container/container/{id}/",
            ObjectKind::Distribution,
        ),
        (
            "/pulp/api/v3/repositories/container/container/{id}/",
            ObjectKind::Repository,
        ),
        (
            "/pulp/api/v3/repositories/container/container-push/{id}/",
            ObjectKind::PushRepository,
        ),
        ("/pulp/api/v3/remotes/container/container/{id}/", ObjectKind::Remote),
    ];
    for (pattern, kind) in KINDS {
        if let Some((Some(id), _)) = parse_href(pattern, href) {
            return Some(ObjectRef::new(kind, id));
        }
    }
    match parse_href("/pulp/api/v3/groups/{n}/", href) {
        Some((_, Some(n))) => Some(ObjectRef::group(n)),
        _ => None,
    }
}

fn user_json(v: &UserView) -> Value {
    let u = &v.user;
    let groups: Vec<Value> = v
        .groups
        .iter()
        .map(|(id, name)| json!({"name": name, "pulp_href": group_href(*id), "prn": format!("prn:core.group:{id}")}))
        .collect();
    json!({
        "pulp_href": user_href(u.id),
        "prn": format!("prn:auth.user:{}", u.id),
        "id": u.id,
        "username": u.name,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "email": u.email,
        "is_staff": u.is_staff,
        "is_active": u.is_active,
        "date_joined": u.date_joined.as_ref().map(ts),
        "groups": groups,
        "hidden_fields": [{"name": "password", "is_set": u.password_hash != "!"}],
    })
}

fn group_json(g: &Group) -> Value {
    json!({
        "name": g.name,
        "pulp_href": group_href(g.id),
        "prn": format!("prn:core.group:{}", g.id),
        "id": g.id,
    })
}

fn role_json(r: &Role) -> Value {
    let id = role_id(r.name);
    json!({
        "pulp_href": role_href(r.name),
        "prn": format!("prn:core.role:{id}"),
        "pulp_created": "2024-01-01T00:00:00.000000Z",
        "pulp_last_updated": "2024-01-01T00:00:00.000000Z",
        "name": r.name,
        "description": r.description,
        "permissions": r.permissions,
        "locked": true,
    })
}

fn assignment_json(a: &RoleAssignment) -> Value {
    let role = crate::services::accounts::roles::role(&a.role);
    let (href, prn) = match a.holder {
        Holder::User(_) => (
            format!("{}roles/{}/", holder_href(a.holder), a.id),
            format!("prn:core.userrole:{}", a.id),
        ),
        Holder::Group(_) => (
            format!("{}roles/{}/", holder_href(a.holder), a.id),
            format!("prn:core.grouprole:{}", a.id),
        ),
    };
    json!({
        "pulp_href": href,
        "prn": prn,
        "pulp_created": ts(&a.created),
        "pulp_last_updated": ts(&a.created),
        "role": a.role,
        "content_object": a.object.map(object_href),
        "content_object_prn": a.object.map(object_prn),
        "description": role.and_then(|r| r.description),
        "permissions": role.map(|r| r.permissions).unwrap_or_default(),
        "domain": Value::Null,
    })
}

fn number(c: &Ctx<'_>) -> u64 {
    c.m.n.unwrap_or(0)
}

// ---- users ---------------------------------------------------------------------------------

fn user_change(c: &Ctx<'_>, partial: bool) -> Result<UserChange, ApiError> {
    let mut i = c.input(partial)?;
    let change = UserChange {
        username: i.string("username", true),
        password: i.opt_string("password", true),
        first_name: i.string("first_name", false),
        last_name: i.string("last_name", false),
        email: i.string("email", false),
        is_staff: i.boolean("is_staff"),
        is_active: i.boolean("is_active"),
    };
    if change.email.as_ref().is_some_and(|e| !e.is_empty() && !valid_email(e)) {
        i.err("email", "Enter a valid email address.");
    }
    i.finish()?;
    Ok(change)
}

fn valid_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !e.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// The numbers of the PRNs of `prn__in` of this type (`prn:auth.user:<id>`).
fn prn_numbers(c: &Ctx<'_>, ty: &str) -> Option<Vec<u64>> {
    c.q_list("prn__in").map(|ps| {
        ps.iter()
            .filter_map(|p| {
                p.strip_prefix("prn:")?
                    .strip_prefix(ty)?
                    .strip_prefix(':')?
                    .parse()
                    .ok()
            })
            .collect()
    })
}

/// `ordering` over these fields (those Pulp declares, each mapped to what it orders by).
fn order(
    c: &Ctx<'_>,
    fields: &'static [&'static str],
    key: impl Fn(&'static str) -> SortKey,
) -> Result<Sort, ApiError> {
    let allowed: Vec<(&str, SortKey)> = fields.iter().map(|f| (*f, key(f))).collect();
    lookups::ordering(c, &allowed)
}

pub(super) async fn user_list(c: &Ctx<'_>) -> Answer {
    let f = UserFilter {
        ids: prn_numbers(c, "auth.user"),
        sort: order(c, ORDER_USERS, |f| match f {
            "username" => SortKey::Name,
            "id" | "pk" => SortKey::Id,
            "date_joined" => SortKey::Created,
            f => SortKey::Field(f),
        })?,
        username: NameFilter {
            name: c.q_owned("username"),
            name_in: c.q_list("username__in"),
            name_contains: c.q_owned("username__contains"),
            name_icontains: c.q_owned("username__icontains"),
            name_iexact: c.q_owned("username__iexact"),
            ..NameFilter::default()
        },
        is_active: c.boolean("is_active")?,
        is_staff: c.boolean("is_staff")?,
    };
    let page = c.paging()?;
    let listing = c.accounts().users(&c.who, &f, page).await?;
    c.page(page, listing.map(|u| user_json(&u)))
}

pub(super) async fn user_read(c: &Ctx<'_>) -> Answer {
    c.ok(user_json(&c.accounts().user(&c.who, number(c)).await?))
}

pub(super) async fn user_create(c: &Ctx<'_>) -> Answer {
    let change = user_change(c, false)?;
    let u = c.accounts().create_user(&c.who, change).await?;
    Ok(json_response(StatusCode::CREATED, &user_json(&u)))
}

pub(super) async fn user_update(c: &Ctx<'_>, partial: bool) -> Answer {
    let change = user_change(c, partial)?;
    c.ok(user_json(&c.accounts().update_user(&c.who, number(c), change).await?))
}

pub(super) async fn user_delete(c: &Ctx<'_>) -> Answer {
    c.accounts().delete_user(&c.who, number(c)).await?;
    Ok(super::no_content())
}

// ---- groups --------------------------------------------------------------------------------

pub(super) async fn group_list(c: &Ctx<'_>) -> Answer {
    let f = GroupFilter {
        names: NameFilter {
            name: c.q_owned("name"),
            name_in: c.q_list("name__in"),
            name_contains: c.q_owned("name__contains"),
            name_icontains: c.q_owned("name__icontains"),
            name_iexact: c.q_owned("name__iexact"),
            ..NameFilter::default()
        },
        ids: prn_numbers(c, "core.group"),
        sort: order(c, ORDER_GROUPS, |f| match f {
            "name" => SortKey::Name,
            _ => SortKey::Id,
        })?,
    };
    let page = c.paging()?;
    let listing = c.accounts().groups(&c.who, &f, page).await?;
    c.page(page, listing.map(|g| group_json(&g)))
}

pub(super) async fn group_read(c: &Ctx<'_>) -> Answer {
    c.ok(group_json(&c.accounts().group(&c.who, number(c)).await?))
}

fn group_name(c: &Ctx<'_>, partial: bool) -> Result<Option<String>, ApiError> {
    let mut i = c.input(partial)?;
    let name = i.string("name", true);
    if name.as_ref().is_some_and(|n| n.chars().count() > 150) {
        i.err("name", "Ensure this field has no more than 150 characters.");
    }
    i.finish()?;
    Ok(name)
}

pub(super) async fn group_create(c: &Ctx<'_>) -> Answer {
    let name = group_name(c, false)?.unwrap_or_default();
    let g = c.accounts().create_group(&c.who, &name).await?;
    Ok(json_response(StatusCode::CREATED, &group_json(&g)))
}

pub(super) async fn group_update(c: &Ctx<'_>, partial: bool) -> Answer {
    let g = match group_name(c, partial)? {
        Some(name) => c.accounts().rename_group(&c.who, number(c), &name).await?,
        None => c.accounts().group(&c.who, number(c)).await?,
    };
    c.ok(group_json(&g))
}

pub(super) async fn group_delete(c: &Ctx<'_>) -> Answer {
    c.accounts().delete_group(&c.who, number(c)).await?;
    Ok(super::no_content())
}

fn group_user_json(id: u64, name: &str) -> Value {
    json!({"username": name, "pulp_href": user_href(id), "prn": format!("prn:auth.user:{id}")})
}

pub(super) async fn group_user_list(c: &Ctx<'_>) -> Answer {
    let page = c.paging()?;
    let listing = c.accounts().group_users(&c.who, number(c), page).await?;
    c.page(page, listing.map(|(id, name)| group_user_json(id, &name)))
}

pub(super) async fn group_user_add(c: &Ctx<'_>) -> Answer {
    let mut i = c.input(false)?;
    let username = i.string("username", true);
    i.finish()?;
    let (id, name) = c
        .accounts()
        .add_group_user(&c.who, number(c), &username.unwrap_or_default())
        .await?;
    Ok(json_response(StatusCode::CREATED, &group_user_json(id, &name)))
}

pub(super) async fn group_user_remove(c: &Ctx<'_>) -> Answer {
    c.accounts()
        .remove_group_user(&c.who, number(c), c.m.m.unwrap_or(0))
        .await?;
    Ok(super::no_content())
}

// ---- roles ---------------------------------------------------------------------------------

pub(super) async fn role_list(c: &Ctx<'_>) -> Answer {
    let names = NameFilter {
        name: c.q_owned("name"),
        name_in: c.q_list("name__in"),
        name_contains: c.q_owned("name__contains"),
        name_icontains: c.q_owned("name__icontains"),
        name_iexact: c.q_owned("name__iexact"),
        name_startswith: c.q_owned("name__startswith"),
        also_ids: c.q_list("prn__in").map(|ps| {
            ps.iter()
                .filter_map(|p| Uuid::parse_str(p.strip_prefix("prn:core.role:")?).ok())
                .collect()
        }),
        ..NameFilter::default()
    };
    let sort = order(c, ORDER_ROLES, |f| match f {
        "name" => SortKey::Name,
        "pk" | "pulp_id" => SortKey::Id,
        f => SortKey::Field(f),
    })?;
    let page = c.paging()?;
    let listing = c
        .accounts()
        .roles(&c.who, &names, c.boolean("locked")?, &sort, page)
        .await?;
    c.page(page, listing.map(role_json))
}

pub(super) async fn role_read(c: &Ctx<'_>) -> Answer {
    c.ok(role_json(c.accounts().role(&c.who, c.id()).await?))
}

fn holder(c: &Ctx<'_>, group: bool) -> Holder {
    if group {
        Holder::Group(number(c))
    } else {
        Holder::User(number(c))
    }
}

pub(super) async fn assignment_list(c: &Ctx<'_>, group: bool) -> Answer {
    let object = match c.q("content_object") {
        None | Some("") => None,
        Some("null") => Some(None),
        Some(h) => match parse_object(h) {
            Some(o) => Some(Some(o)),
            None => return Err(ApiError::field("content_object", format!("Invalid value: {h}."))),
        },
    };
    let f = RoleFilter {
        names: NameFilter {
            name: c.q_owned("role"),
            name_in: c.q_list("role__in"),
            name_contains: c.q_owned("role__contains"),
            name_icontains: c.q_owned("role__icontains"),
            name_startswith: c.q_owned("role__startswith"),
            ..NameFilter::default()
        },
        object,
        sort: order(c, ORDER_ASSIGNMENTS, |f| match f {
            "pk" => SortKey::Id,
            "pulp_created" => SortKey::Created,
            f => SortKey::Field(f),
        })?,
    };
    let page = c.paging()?;
    let listing = c.accounts().holder_roles(&c.who, holder(c, group), &f, page).await?;
    c.page(page, listing.map(|a| assignment_json(&a)))
}

pub(super) async fn assignment_read(c: &Ctx<'_>, group: bool) -> Answer {
    let a = c.accounts().holder_role(&c.who, holder(c, group), c.id()).await?;
    c.ok(assignment_json(&a))
}

pub(super) async fn assignment_create(c: &Ctx<'_>, group: bool) -> Answer {
    let mut i = c.input(false)?;
    let role = i.string("role", true);
    let object = i.opt_string("content_object", true);
    let prn = i.opt_string("content_object_prn", true);
    if i.opt_string("domain", true).flatten().is_some() {
        i.err("domain", "Domains are not enabled.");
    }
    i.finish()?;
    let object = match (object, prn) {
        (Some(Some(h)), _) => match parse_object(&h) {
            Some(o) => Some(o),
            None => return Err(ApiError::field("content_object", format!("Invalid value: {h}."))),
        },
        (Some(None), _) | (None, Some(None)) => None,
        (None, Some(Some(p))) => match parse_prn(&p) {
            Some(o) => Some(o),
            None => return Err(ApiError::field("content_object_prn", format!("Invalid value: {p}."))),
        },
        (None, None) => {
            let mut m = std::collections::BTreeMap::new();
            m.insert(
                "non_field_errors".to_owned(),
                vec![
                    "Either 'content_object' or 'content_object_prn' needs to be specified. Use 'null' for \
                      global or domain level access."
                        .to_owned(),
                ],
            );
            return Err(ApiError::Fields(m));
        }
    };
    let a = c
        .accounts()
        .assign(&c.who, holder(c, group), &role.unwrap_or_default(), object)
        .await?;
    Ok(json_response(StatusCode::CREATED, &assignment_json(&a)))
}

/// The object a PRN names.
fn parse_prn(p: &str) -> Option<ObjectRef> {
    let (ty, id) = p.strip_prefix("prn:")?.rsplit_once(':')?;
    if ty == "core.group" {
        return Some(ObjectRef::group(id.parse().ok()?));
    }
    let id = Uuid::parse_str(id).ok()?;
    let kind = match ty {
        "container.containernamespace" => ObjectKind::Namespace,
        "container.containerdistribution" => ObjectKind::Distribution,
        "container.containerrepository" => ObjectKind::Repository,
        "container.containerpushrepository" => ObjectKind::PushRepository,
        "container.containerremote" => ObjectKind::Remote,
        _ => return None,
    };
    Some(ObjectRef::new(kind, id))
}

pub(super) async fn assignment_delete(c: &Ctx<'_>, group: bool) -> Answer {
    c.accounts().unassign(&c.who, holder(c, group), c.id()).await?;
    Ok(super::no_content())
}

// ---- roles on one object -------------------------------------------------------------------

fn nested(c: &Ctx<'_>) -> Result<NestedRoles, ApiError> {
    let mut i = c.input(false)?;
    let role = i.string("role", true);
    let users = i.opt_str_list("users").flatten().unwrap_or_default();
    let groups = i.opt_str_list("groups").flatten().unwrap_or_default();
    i.finish()?;
    Ok(NestedRoles {
        role: role.unwrap_or_default(),
        users,
        groups,
    })
}

pub(super) async fn object_roles(c: &Ctx<'_>, op: RoleOp, kind: ObjectKind) -> Answer {
    let o = match kind {
        ObjectKind::Group => ObjectRef::group(number(c)),
        kind => ObjectRef::new(kind, c.id()),
    };
    match op {
        RoleOp::List => {
            let roles = c.accounts().object_roles(&c.who, o).await?;
            let list: Vec<Value> = roles
                .0
                .into_iter()
                .map(|(role, (users, groups))| json!({"role": role, "users": users, "groups": groups}))
                .collect();
            c.ok(json!({ "roles": list }))
        }
        RoleOp::Add | RoleOp::Remove => {
            let n = nested(c)?;
            if op == RoleOp::Add {
                c.accounts().add_object_role(&c.who, o, &n).await?;
            } else {
                c.accounts().remove_object_role(&c.who, o, &n).await?;
            }
            Ok(json_response(
                StatusCode::CREATED,
                &json!({"users": n.users, "groups": n.groups, "role": n.role}),
            ))
        }
        RoleOp::MyPermissions => {
            let perms = c.accounts().my_permissions(&c.who, o).await?;
            c.ok(json!({ "permissions": perms }))
        }
    }
}
