//! The roles Berth knows: pulp_container's locked container roles and pulpcore's group and
//! task roles, with the permissions each carries, as those projects define them. Roles are
//! locked: they cannot be changed or deleted, and no others can be made.
//!
//! A permission is `<app>.<codename>`; the model it applies to is the end of the codename
//! (`container.namespace_pull_containerdistribution` applies to namespaces: it is given on a
//! namespace and reaches the distributions in it).
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `services`.

use crate::store::ObjectKind;

/// One locked role.
#[derive(Debug)]
pub struct Role {
    pub name: &'static str,
    pub description: Option<&'static str>,
    pub permissions: &'static [&'static str],
}

const NAMESPACE_COLLABORATOR: &[&str] = &[
    "container.namespace_add_containerdistribution",
    "container.namespace_change_containerdistribution",
    "container.namespace_change_containerpushrepository",
    "container.namespace_change_containerrepository",
    "container.namespace_delete_containerdistribution",
    "container.namespace_modify_content_containerpushrepository",
    "container.namespace_modify_content_containerrepository",
    "container.namespace_pull_containerdistribution",
    "container.namespace_push_containerdistribution",
    "container.namespace_view_containerdistribution",
    "container.namespace_view_containerpushrepository",
    "container.namespace_view_containerrepository",
    "container.view_containernamespace",
];

const NAMESPACE_OWNER: &[&str] = &[
    "container.delete_containernamespace",
    "container.manage_roles_containernamespace",
    "container.namespace_add_containerdistribution",
    "container.namespace_change_containerdistribution",
    "container.namespace_change_containerpushrepository",
    "container.namespace_change_containerrepository",
    "container.namespace_delete_containerdistribution",
    "container.namespace_modify_content_containerpushrepository",
    "container.namespace_modify_content_containerrepository",
    "container.namespace_pull_containerdistribution",
    "container.namespace_push_containerdistribution",
    "container.namespace_view_containerdistribution",
    "container.namespace_view_containerpushrepository",
    "container.namespace_view_containerrepository",
    "container.view_containernamespace",
];

/// Every role, by name.
pub static ROLES: &[Role] = &[
    Role {
        name: "container.containerdistribution_collaborator",
        description: None,
        permissions: &[
            "container.pull_containerdistribution",
            "container.push_containerdistribution",
            "container.view_containerdistribution",
        ],
    },
    Role {
        name: "container.containerdistribution_consumer",
        description: None,
        permissions: &[
            "container.pull_containerdistribution",
            "container.view_containerdistribution",
        ],
    },
    Role {
        name: "container.containerdistribution_creator",
        description: None,
        permissions: &["container.add_containerdistribution"],
    },
    Role {
        name: "container.containerdistribution_owner",
        description: None,
        permissions: &[
            "container.change_containerdistribution",
            "container.delete_containerdistribution",
            "container.manage_roles_containerdistribution",
            "container.pull_containerdistribution",
            "container.push_containerdistribution",
            "container.view_containerdistribution",
        ],
    },
    Role {
        name: "container.containernamespace_collaborator",
        description: None,
        permissions: NAMESPACE_COLLABORATOR,
    },
    Role {
        name: "container.containernamespace_consumer",
        description: None,
        permissions: &[
            "container.namespace_pull_containerdistribution",
            "container.namespace_view_containerdistribution",
            "container.namespace_view_containerpushrepository",
            "container.namespace_view_containerrepository",
            "container.view_containernamespace",
        ],
    },
    Role {
        name: "container.containernamespace_creator",
        description: None,
        permissions: &["container.add_containernamespace"],
    },
    Role {
        name: "container.containernamespace_owner",
        description: None,
        permissions: NAMESPACE_OWNER,
    },
    Role {
        name: "container.containerremote_creator",
        description: None,
        permissions: &["container.add_containerremote"],
    },
    Role {
        name: "container.containerremote_owner",
        description: None,
        permissions: &[
            "container.change_containerremote",
            "container.delete_containerremote",
            "container.manage_roles_containerremote",
            "container.view_containerremote",
        ],
    },
    Role {
        name: "container.containerremote_viewer",
        description: None,
        permissions: &["container.view_containerremote"],
    },
    Role {
        name: "container.containerrepository_content_manager",
        description: None,
        permissions: &[
            "container.build_image_containerrepository",
            "container.delete_containerrepository_versions",
            "container.modify_content_containerrepository",
            "container.sync_containerrepository",
            "container.view_containerrepository",
        ],
    },
    Role {
        name: "container.containerrepository_creator",
        description: None,
        permissions: &["container.add_containerrepository"],
    },
    Role {
        name: "container.containerrepository_owner",
        description: None,
        permissions: &[
            "container.build_image_containerrepository",
            "container.change_containerrepository",
            "container.delete_containerrepository",
            "container.delete_containerrepository_versions",
            "container.manage_roles_containerrepository",
            "container.modify_content_containerrepository",
            "container.sync_containerrepository",
            "container.view_containerrepository",
        ],
    },
    Role {
        name: "container.containerrepository_viewer",
        description: None,
        permissions: &["container.view_containerrepository"],
    },
    Role {
        name: "core.group_creator",
        description: None,
        permissions: &["core.add_group"],
    },
    Role {
        name: "core.group_owner",
        description: None,
        permissions: &[
            "core.change_group",
            "core.delete_group",
            "core.manage_roles_group",
            "core.view_group",
        ],
    },
    Role {
        name: "core.group_viewer",
        description: None,
        permissions: &["core.view_group"],
    },
    Role {
        name: "core.task_owner",
        description: Some("Allow all actions on a task."),
        permissions: &[
            "core.change_task",
            "core.delete_task",
            "core.manage_roles_task",
            "core.view_task",
        ],
    },
    Role {
        name: "core.task_viewer",
        description: None,
        permissions: &["core.view_task"],
    },
];

/// The role named `name`.
pub fn role(name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.name == name)
}

/// The kind of object a permission is given on, when it can be given on one.
pub fn permission_object(perm: &str) -> Option<ObjectKind> {
    let codename = perm.split_once('.')?.1;
    if codename.starts_with("namespace_") || codename.ends_with("_containernamespace") {
        return Some(ObjectKind::Namespace);
    }
    let model = codename.rsplit('_').next()?;
    Some(match model {
        "containerdistribution" => ObjectKind::Distribution,
        "containerrepository" | "versions" => ObjectKind::Repository,
        "containerpushrepository" => ObjectKind::PushRepository,
        "containerremote" => ObjectKind::Remote,
        "group" => ObjectKind::Group,
        _ => return None,
    })
}

impl Role {
    /// Whether the role carries any permission that can be given on an object of `kind`.
    pub fn applies_to(&self, kind: ObjectKind) -> bool {
        self.permissions.iter().any(|p| permission_object(p) == Some(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_sorted_unique_and_their_permissions_name_a_model() {
        for w in ROLES.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        for r in ROLES {
            for w in r.permissions.windows(2) {
                assert!(w[0] < w[1], "{}: {} before {}", r.name, w[0], w[1]);
            }
            // tasks are no objects roles are given on here; every other permission names one
            if !r.name.starts_with("core.task_") {
                for p in r.permissions {
                    assert!(permission_object(p).is_some(), "{}: {p} names no object kind", r.name);
                }
            }
        }
        let ns = role("container.containernamespace_owner").unwrap();
        assert!(ns.applies_to(ObjectKind::Namespace));
        assert!(!ns.applies_to(ObjectKind::Distribution));
        assert!(role("container.containerdistribution_consumer")
            .unwrap()
            .applies_to(ObjectKind::Distribution));
        assert!(role("container.containerrepository_owner")
            .unwrap()
            .applies_to(ObjectKind::Repository));
        assert!(role("core.group_owner").unwrap().applies_to(ObjectKind::Group));
        assert!(role("nope").is_none());
    }
}
