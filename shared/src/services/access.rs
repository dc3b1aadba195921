//! Who may do what on the registry: token grants (the intersection of what was asked and
//! what the user may do) and the same rules for Basic auth when tokens are off.
//!
//! - Public distributions: anyone pulls. Private ones: authenticated users pull.
//! - Push (and delete): admins only; pushes into mirrors are refused later with DENIED.
//! - A name with no distribution: admins only (they may create it by pushing), so anonymous
//!   callers cannot tell a private distribution from a missing one.
//! - The catalog: everyone; it lists only what the caller may pull.

use std::sync::Arc;

use super::tokens::{Access, Tokens};
use crate::domain::RepoName;
use crate::ports::StoreError;
use crate::store::Store;

/// How the registry authenticates.
#[derive(Clone, Default)]
pub enum AuthMode {
    /// No checks at all (tests and embedding only; the binary never uses it).
    #[default]
    Open,
    /// Basic auth on the registry, anonymous reads of public content (token auth off).
    Basic,
    /// Bearer tokens from `/token` (the default of the binary).
    Token(Arc<Tokens>),
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthMode::Open => "Open",
            AuthMode::Basic => "Basic",
            AuthMode::Token(_) => "Token",
        })
    }
}

/// Who is calling.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: Option<String>,
    pub admin: bool,
}

impl Identity {
    pub fn anonymous() -> Self {
        Identity::default()
    }
}

pub struct AccessRules {
    store: Store,
}

impl AccessRules {
    pub fn new(store: Store) -> Self {
        AccessRules { store }
    }

    /// Whether `who` may pull `name`.
    pub async fn may_pull(&self, who: &Identity, name: &RepoName) -> Result<bool, StoreError> {
        if who.admin {
            return Ok(true);
        }
        Ok(match self.store.distribution_by_base_path(name).await? {
            Some(d) => !d.private || who.user.is_some(),
            None => false,
        })
    }

    pub fn may_push(&self, who: &Identity) -> bool {
        who.admin
    }

    /// Whether `who` sees a distribution in the catalog.
    pub fn may_list(&self, who: &Identity, private: bool) -> bool {
        !private || who.user.is_some()
    }

    /// The part of `requested` that `who` may have.
    pub async fn grant(&self, who: &Identity, requested: Vec<Access>) -> Result<Vec<Access>, StoreError> {
        let mut out = Vec::new();
        for mut a in requested {
            let mut allowed = Vec::new();
            match a.kind.as_str() {
                "registry" if a.name == "catalog" && a.actions.iter().any(|x| x == "*") => {
                    allowed.push("*".to_owned());
                }
                "repository" => {
                    let Ok(name) = RepoName::parse(&a.name) else { continue };
                    for action in &a.actions {
                        let ok = match action.as_str() {
                            "pull" => self.may_pull(who, &name).await?,
                            "push" | "delete" => self.may_push(who),
                            "*" => who.admin,
                            _ => false,
                        };
                        if ok && !allowed.contains(action) {
                            allowed.push(action.clone());
                        }
                    }
                }
                _ => {}
            }
            a.actions = allowed;
            if !a.actions.is_empty() {
                out.push(a);
            }
        }
        Ok(out)
    }
}
