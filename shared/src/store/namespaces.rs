//! Namespaces: the first segments of distributions' base paths, as Pulp's container plugin
//! keeps them (`ContainerNamespace`).
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `namespaces` | `<name>` | [`Namespace`] (the name row is the item) |
//! | `ns-ids` | `<id>` | name |
//!
//! Every write of a distribution (a create, a replace) holds its namespace in the same
//! transaction: it creates the namespace row when there is none (`Cond::Absent`, so of racing
//! writers exactly one makes it: DESIGN invariant 6), and otherwise rewrites the row unchanged
//! at the revision it read. Removing a namespace succeeds only at the revision read before the
//! namespace was found empty, so a distribution written meanwhile makes the removal fail and look
//! again: no distribution is ever left without its namespace, and no namespace is made twice.
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only.

use std::time::Duration;

use uuid::Uuid;

use super::{decode, encode, Distribution, NameRepairs, Namespace, Store};
use crate::ports::{Cond, Query, StoreError, Write};

const NAMESPACES: &str = "namespaces";
const NS_IDS: &str = "ns-ids";

/// How many times a write that holds a namespace is tried again when the namespace changed
/// under it (other distributions of the namespace written at the same moment).
const HOLD_ATTEMPTS: u32 = 40;

/// The writes that hold a namespace in a distribution's transaction, and what they saw.
pub(super) struct NamespaceHold {
    pub namespace: Namespace,
    pub writes: Vec<Write>,
    /// The revision of the namespace row read; `None` when there was none (the writes make it).
    seen: Option<u64>,
}

/// What [`Store::remove_namespace`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceRemoval {
    /// The namespace and its id index are gone.
    Removed,
    /// It still holds these distributions; nothing was removed.
    Holds(Vec<Distribution>),
}

/// A short random pause before trying again, growing with the attempt.
pub(super) async fn hold_backoff(attempt: u32) {
    let ceiling = 2u64 << attempt.min(6);
    tokio::time::sleep(Duration::from_millis(1 + rand::random::<u64>() % ceiling)).await;
}

impl Store {
    /// The writes that hold namespace `name` for a distribution's transaction: its row
    /// rewritten at the revision read, or, when there is none, a new namespace and its id index.
    pub(super) async fn hold_namespace(&self, name: &str) -> Result<NamespaceHold, StoreError> {
        Ok(match self.t.get(NAMESPACES, name).await? {
            Some(row) => NamespaceHold {
                namespace: decode(&row)?,
                writes: vec![Write::put(NAMESPACES, name, row.value.clone(), Cond::Rev(row.rev))],
                seen: Some(row.rev),
            },
            None => {
                let ns = Namespace::new(name);
                NamespaceHold {
                    writes: vec![
                        Write::put(NAMESPACES, name, encode(&ns)?, Cond::Absent),
                        Write::put(NS_IDS, ns.id.to_string(), encode(&ns.name)?, Cond::Absent),
                    ],
                    namespace: ns,
                    seen: None,
                }
            }
        })
    }

    /// Writes `writes` together with a hold on `d`'s namespace, setting `d.namespace` first
    /// (`build` makes the writes from the distribution as it will be stored). When the
    /// transaction fails because the namespace changed meanwhile (another distribution of it
    /// was written, or it was made or removed), it is tried again; any other `Conflict` is
    /// returned.
    pub(super) async fn write_holding_namespace<F, Fut>(&self, d: &Distribution, build: F) -> Result<(), StoreError>
    where
        F: Fn(Distribution, Vec<Write>) -> Fut,
        Fut: std::future::Future<Output = Result<(), StoreError>>,
    {
        let name = d.namespace_name();
        for attempt in 0..HOLD_ATTEMPTS {
            let hold = self.hold_namespace(name).await?;
            let mut d = d.clone();
            d.namespace = Some(hold.namespace.id);
            match build(d, hold.writes).await {
                Err(StoreError::Conflict(c)) => {
                    let now = self.t.get(NAMESPACES, name).await?.map(|r| r.rev);
                    if now == hold.seen {
                        return Err(StoreError::Conflict(c));
                    }
                    hold_backoff(attempt).await;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict(format!("namespace {name} kept changing")))
    }

    /// Creates a namespace: its name row and its id index in one transaction. `Conflict` when
    /// the name is taken.
    pub async fn create_namespace(&self, ns: &Namespace) -> Result<(), StoreError> {
        let items = vec![Write::put(NS_IDS, ns.id.to_string(), encode(&ns.name)?, Cond::Absent)];
        self.create_named(
            (NAMESPACES, &ns.name),
            ns,
            items,
            &[],
            |row| Ok((NS_IDS.to_owned(), decode::<Namespace>(row)?.id.to_string())),
            |item| Ok(decode::<String>(item)? == ns.name),
        )
        .await
    }

    /// The namespace of `id`. Two reads.
    pub async fn namespace(&self, id: Uuid) -> Result<Option<Namespace>, StoreError> {
        let Some(row) = self.t.get(NS_IDS, &id.to_string()).await? else {
            return Ok(None);
        };
        let name: String = decode(&row)?;
        Ok(self.namespace_by_name(&name).await?.filter(|ns| ns.id == id))
    }

    /// The namespace named `name`. One read.
    pub async fn namespace_by_name(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        match self.t.get(NAMESPACES, name).await? {
            Some(row) => Ok(Some(decode(&row)?)),
            None => Ok(None),
        }
    }

    /// Every namespace, in name order. One scan of the namespaces partition.
    pub async fn namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        let rows = self.t.query(NAMESPACES, Query::prefix("")).await?;
        rows.iter().map(decode).collect()
    }

    /// The distributions in namespace `name`, in base-path order: the one whose base path is
    /// the name and those under `<name>/`. One read and one query; none for a name that is no
    /// base path's first segment (a namespace made through the API may be named anything).
    pub async fn namespace_distributions(&self, name: &str) -> Result<Vec<Distribution>, StoreError> {
        let mut out = Vec::new();
        if name.is_empty() || name.contains('/') {
            return Ok(out);
        }
        if let Some(row) = self.t.get("dists", name).await? {
            out.push(decode(&row)?);
        }
        for row in self.t.query("dists", Query::prefix(format!("{name}/"))).await? {
            out.push(decode(&row)?);
        }
        Ok(out)
    }

    /// Removes namespace `id` when it holds no distribution: its row and its id index in one
    /// transaction, at the revision of the row read before the distributions were looked up.
    /// `Holds` with the distributions it holds otherwise (remove those first), `NotFound` when
    /// there is no such namespace.
    pub async fn remove_namespace(&self, id: Uuid) -> Result<NamespaceRemoval, StoreError> {
        for attempt in 0..HOLD_ATTEMPTS {
            let Some(row) = self.t.get(NS_IDS, &id.to_string()).await? else {
                return Err(StoreError::NotFound);
            };
            let name: String = decode(&row)?;
            let Some(ns_row) = self.t.get(NAMESPACES, &name).await? else {
                return Err(StoreError::NotFound);
            };
            if decode::<Namespace>(&ns_row)?.id != id {
                return Err(StoreError::NotFound);
            }
            let held = self.namespace_distributions(&name).await?;
            if !held.is_empty() {
                return Ok(NamespaceRemoval::Holds(held));
            }
            let writes = vec![
                Write::delete(NAMESPACES, &name, Cond::Rev(ns_row.rev)),
                Write::delete(NS_IDS, id.to_string(), Cond::Rev(row.rev)),
            ];
            match self.t.transact(writes).await {
                Ok(()) => return Ok(NamespaceRemoval::Removed),
                // a distribution of it was written meanwhile: look again
                Err(StoreError::Conflict(_)) => hold_backoff(attempt).await,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!("namespace {id} kept changing")))
    }

    /// Gives every distribution that has none (written by a version before namespaces) the
    /// namespace of its base path, making the namespace when it is missing.
    pub(super) async fn repair_namespaces(&self, out: &mut NameRepairs) -> Result<(), StoreError> {
        for row in self.t.query("dists", Query::prefix("")).await? {
            let d: Distribution = decode(&row)?;
            let ok = match d.namespace {
                Some(id) => self
                    .namespace(id)
                    .await?
                    .is_some_and(|ns| ns.name == d.namespace_name()),
                None => false,
            };
            if ok {
                continue;
            }
            let (sk, rev) = (row.sk.clone(), row.rev);
            self.write_holding_namespace(&d, |d, mut writes| {
                let sk = sk.clone();
                async move {
                    writes.push(Write::put("dists", sk, encode(&d)?, Cond::Rev(rev)));
                    self.t.transact(writes).await
                }
            })
            .await?;
            out.actions.push(format!(
                "distribution {:?}: now in namespace {:?}",
                d.name,
                d.namespace_name()
            ));
        }
        Ok(())
    }
}
