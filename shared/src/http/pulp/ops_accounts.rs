//! The operations on users, groups, roles and role assignments (pulpcore's), and the role
//! actions on container objects (`list_roles`, `add_role`, `remove_role`, `my_permissions`),
//! with Pulp's operationIds and query parameters. Routed and documented with [`super::ops::OPS`].

use http::Method;

use super::ops::{Op, OpId, RoleOp};
use super::params::ParamType;
use super::params::READ;
use crate::store::ObjectKind;

use ParamType::{Boolean as B, Fields as F, Integer as I, String as S, StringArray as A};

const USER: &str = "/pulp/api/v3/users/{n}/";
const USER_ROLE: &str = "/pulp/api/v3/users/{n}/roles/{id}/";
const GROUP: &str = "/pulp/api/v3/groups/{n}/";
const GROUP_USER: &str = "/pulp/api/v3/groups/{n}/users/{m}/";
const GROUP_ROLE: &str = "/pulp/api/v3/groups/{n}/roles/{id}/";
const ROLE: &str = "/pulp/api/v3/roles/{id}/";

const U_HREF: Option<(&str, &str)> = Some(("auth_user_href", USER));
const G_HREF: Option<(&str, &str)> = Some(("group_href", GROUP));

/// The fields each list orders by, as Pulp declares them.
pub(super) const ORDER_USERS: &[&str] = &[
    "date_joined",
    "email",
    "first_name",
    "id",
    "is_active",
    "is_staff",
    "is_superuser",
    "last_login",
    "last_name",
    "password",
    "pk",
    "username",
];
pub(super) const ORDER_GROUPS: &[&str] = &["id", "name", "pk"];
pub(super) const ORDER_ROLES: &[&str] = &[
    "description",
    "locked",
    "name",
    "pk",
    "pulp_created",
    "pulp_id",
    "pulp_last_updated",
];
pub(super) const ORDER_ASSIGNMENTS: &[&str] = &["description", "pk", "pulp_created", "role"];

/// pulpcore's `UserFilter`.
const USERS_Q: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_USERS)),
    ("username", S),
    ("username__contains", S),
    ("username__icontains", S),
    ("username__iexact", S),
    ("username__in", A),
    ("prn__in", A),
    ("is_active", B),
    ("is_staff", B),
];
/// pulpcore's `GroupFilter`.
const GROUPS_Q: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_GROUPS)),
    ("name", S),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__iexact", S),
    ("name__in", A),
    ("prn__in", A),
];
/// pulpcore's `RoleFilter`.
const ROLES_Q: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_ROLES)),
    ("name", S),
    ("name__contains", S),
    ("name__icontains", S),
    ("name__iexact", S),
    ("name__in", A),
    ("name__startswith", S),
    ("locked", B),
    ("prn__in", A),
];
/// pulpcore's `UserRoleFilter` / `GroupRoleFilter`.
const ASSIGNMENTS_Q: &[(&str, ParamType)] = &[
    ("limit", I),
    ("offset", I),
    ("fields", F),
    ("exclude_fields", F),
    ("ordering", ParamType::Ordering(ORDER_ASSIGNMENTS)),
    ("role", S),
    ("role__contains", S),
    ("role__icontains", S),
    ("role__in", A),
    ("role__startswith", S),
    ("content_object", S),
    ("domain", ParamType::Uuid),
];
const PAGE_Q: &[(&str, ParamType)] = &[("limit", I), ("offset", I), ("fields", F), ("exclude_fields", F)];

macro_rules! op {
    ($id:expr, $oid:literal, $m:ident, $pat:expr, $href:expr, $q:expr, $body:literal, $status:literal, $tag:literal) => {
        Op {
            id: $id,
            operation_id: $oid,
            method: Method::$m,
            pattern: $pat,
            href: $href,
            query: $q,
            body: $body,
            status: $status,
            public: false,
            tag: $tag,
        }
    };
}

macro_rules! role_ops {
    ($kind:expr, $base:expr, $href:literal, $tag:literal, $lr:literal, $ar:literal, $rr:literal, $mp:literal) => {
        [
            op!(
                OpId::Roles(RoleOp::List, $kind),
                $lr,
                GET,
                concat!($base, "list_roles/"),
                Some(($href, $base)),
                READ,
                false,
                200,
                $tag
            ),
            op!(
                OpId::Roles(RoleOp::Add, $kind),
                $ar,
                POST,
                concat!($base, "add_role/"),
                Some(($href, $base)),
                &[],
                true,
                201,
                $tag
            ),
            op!(
                OpId::Roles(RoleOp::Remove, $kind),
                $rr,
                POST,
                concat!($base, "remove_role/"),
                Some(($href, $base)),
                &[],
                true,
                201,
                $tag
            ),
            op!(
                OpId::Roles(RoleOp::MyPermissions, $kind),
                $mp,
                GET,
                concat!($base, "my_permissions/"),
                Some(($href, $base)),
                READ,
                false,
                200,
                $tag
            ),
        ]
    };
}

const NS_ROLES: [Op; 4] = role_ops!(
    ObjectKind::Namespace,
    "/pulp/api/v3/pulp_container/namespaces/{id}/",
    "container_container_namespace_href",
    "Pulp_Container/Namespaces",
    "pulp_container_namespaces_list_roles",
    "pulp_container_namespaces_add_role",
    "pulp_container_namespaces_remove_role",
    "pulp_container_namespaces_my_permissions"
);
const DIST_ROLES: [Op; 4] = role_ops!(
    ObjectKind::Distribution,
    "/pulp/api/v3/distributions/container/container/{id}/",
    "container_container_distribution_href",
    "Distributions: Container",
    "distributions_container_container_list_roles",
    "distributions_container_container_add_role",
    "distributions_container_container_remove_role",
    "distributions_container_container_my_permissions"
);
const REPO_ROLES: [Op; 4] = role_ops!(
    ObjectKind::Repository,
    "/pulp/api/v3/repositories/container/container/{id}/",
    "container_container_repository_href",
    "Repositories: Container",
    "repositories_container_container_list_roles",
    "repositories_container_container_add_role",
    "repositories_container_container_remove_role",
    "repositories_container_container_my_permissions"
);
const REMOTE_ROLES: [Op; 4] = role_ops!(
    ObjectKind::Remote,
    "/pulp/api/v3/remotes/container/container/{id}/",
    "container_container_remote_href",
    "Remotes: Container",
    "remotes_container_container_list_roles",
    "remotes_container_container_add_role",
    "remotes_container_container_remove_role",
    "remotes_container_container_my_permissions"
);
const GROUP_ROLES: [Op; 4] = role_ops!(
    ObjectKind::Group,
    "/pulp/api/v3/groups/{n}/",
    "group_href",
    "Groups",
    "groups_list_roles",
    "groups_add_role",
    "groups_remove_role",
    "groups_my_permissions"
);

const BASE: &[Op] = &[
    op!(
        OpId::UserList,
        "users_list",
        GET,
        "/pulp/api/v3/users/",
        None,
        USERS_Q,
        false,
        200,
        "Users"
    ),
    op!(
        OpId::UserCreate,
        "users_create",
        POST,
        "/pulp/api/v3/users/",
        None,
        &[],
        true,
        201,
        "Users"
    ),
    op!(
        OpId::UserRead,
        "users_read",
        GET,
        USER,
        U_HREF,
        READ,
        false,
        200,
        "Users"
    ),
    op!(
        OpId::UserPartialUpdate,
        "users_partial_update",
        PATCH,
        USER,
        U_HREF,
        &[],
        true,
        200,
        "Users"
    ),
    op!(
        OpId::UserUpdate,
        "users_update",
        PUT,
        USER,
        U_HREF,
        &[],
        true,
        200,
        "Users"
    ),
    op!(
        OpId::UserDelete,
        "users_delete",
        DELETE,
        USER,
        U_HREF,
        &[],
        false,
        204,
        "Users"
    ),
    op!(
        OpId::UserRoleList,
        "users_roles_list",
        GET,
        "/pulp/api/v3/users/{n}/roles/",
        U_HREF,
        ASSIGNMENTS_Q,
        false,
        200,
        "Users: Roles"
    ),
    op!(
        OpId::UserRoleCreate,
        "users_roles_create",
        POST,
        "/pulp/api/v3/users/{n}/roles/",
        U_HREF,
        &[],
        true,
        201,
        "Users: Roles"
    ),
    op!(
        OpId::UserRoleRead,
        "users_roles_read",
        GET,
        USER_ROLE,
        Some(("auth_users_user_role_href", USER_ROLE)),
        READ,
        false,
        200,
        "Users: Roles"
    ),
    op!(
        OpId::UserRoleDelete,
        "users_roles_delete",
        DELETE,
        USER_ROLE,
        Some(("auth_users_user_role_href", USER_ROLE)),
        &[],
        false,
        204,
        "Users: Roles"
    ),
    op!(
        OpId::GroupList,
        "groups_list",
        GET,
        "/pulp/api/v3/groups/",
        None,
        GROUPS_Q,
        false,
        200,
        "Groups"
    ),
    op!(
        OpId::GroupCreate,
        "groups_create",
        POST,
        "/pulp/api/v3/groups/",
        None,
        &[],
        true,
        201,
        "Groups"
    ),
    op!(
        OpId::GroupRead,
        "groups_read",
        GET,
        GROUP,
        G_HREF,
        READ,
        false,
        200,
        "Groups"
    ),
    op!(
        OpId::GroupPartialUpdate,
        "groups_partial_update",
        PATCH,
        GROUP,
        G_HREF,
        &[],
        true,
        200,
        "Groups"
    ),
    op!(
        OpId::GroupUpdate,
        "groups_update",
        PUT,
        GROUP,
        G_HREF,
        &[],
        true,
        200,
        "Groups"
    ),
    op!(
        OpId::GroupDelete,
        "groups_delete",
        DELETE,
        GROUP,
        G_HREF,
        &[],
        false,
        204,
        "Groups"
    ),
    op!(
        OpId::GroupUserList,
        "groups_users_list",
        GET,
        "/pulp/api/v3/groups/{n}/users/",
        G_HREF,
        PAGE_Q,
        false,
        200,
        "Groups: Users"
    ),
    op!(
        OpId::GroupUserCreate,
        "groups_users_create",
        POST,
        "/pulp/api/v3/groups/{n}/users/",
        G_HREF,
        &[],
        true,
        201,
        "Groups: Users"
    ),
    op!(
        OpId::GroupUserDelete,
        "groups_users_delete",
        DELETE,
        GROUP_USER,
        Some(("groups_user_href", GROUP_USER)),
        &[],
        false,
        204,
        "Groups: Users"
    ),
    op!(
        OpId::GroupRoleList,
        "groups_roles_list",
        GET,
        "/pulp/api/v3/groups/{n}/roles/",
        G_HREF,
        ASSIGNMENTS_Q,
        false,
        200,
        "Groups: Roles"
    ),
    op!(
        OpId::GroupRoleCreate,
        "groups_roles_create",
        POST,
        "/pulp/api/v3/groups/{n}/roles/",
        G_HREF,
        &[],
        true,
        201,
        "Groups: Roles"
    ),
    op!(
        OpId::GroupRoleRead,
        "groups_roles_read",
        GET,
        GROUP_ROLE,
        Some(("groups_group_role_href", GROUP_ROLE)),
        READ,
        false,
        200,
        "Groups: Roles"
    ),
    op!(
        OpId::GroupRoleDelete,
        "groups_roles_delete",
        DELETE,
        GROUP_ROLE,
        Some(("groups_group_role_href", GROUP_ROLE)),
        &[],
        false,
        204,
        "Groups: Roles"
    ),
    op!(
        OpId::RoleList,
        "roles_list",
        GET,
        "/pulp/api/v3/roles/",
        None,
        ROLES_Q,
        false,
        200,
        "Roles"
    ),
    op!(
        OpId::RoleRead,
        "roles_read",
        GET,
        ROLE,
        Some(("role_href", ROLE)),
        READ,
        false,
        200,
        "Roles"
    ),
];

/// Every accounts operation and role action.
pub fn ops() -> impl Iterator<Item = &'static Op> {
    static ROLE_ACTIONS: [[Op; 4]; 5] = [NS_ROLES, DIST_ROLES, REPO_ROLES, REMOTE_ROLES, GROUP_ROLES];
    BASE.iter().chain(ROLE_ACTIONS.iter().flatten())
}
