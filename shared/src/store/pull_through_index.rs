//! The indexes of pull-through distributions, written in the same transaction as the
//! distribution itself (create, replace, delete), so a list of them or of a cache's own
//! distributions is one query, never a scan of every distribution.
//!
//! | pk | sk | value |
//! |---|---|---|
//! | `pt-dists` | `<base path>` | the pull-through distribution's id |
//! | `cached#<pull-through distribution id>` | `<base path>` | the id of a distribution a pull through it made |
//!
//! Layering: `domain ← ports ← {store, adapters} ← services ← http ← app ← functions/*`;
//! part of `store`, which knows `domain` and `ports` only.

use uuid::Uuid;

use super::{decode, encode, Distribution, Store};
use crate::ports::{Cond, Query, StoreError, Write};

const PT_DISTS: &str = "pt-dists";

fn cached(pt: Uuid) -> String {
    format!("cached#{pt}")
}

/// The index rows of `d`: written (`put`) or removed.
pub(super) fn rows(d: &Distribution, put: bool) -> Result<Vec<Write>, StoreError> {
    let mut out = Vec::new();
    let bp = d.base_path.as_str();
    let mut row = |pk: String| -> Result<(), StoreError> {
        out.push(if put {
            Write::put(pk, bp, encode(&d.id)?, Cond::Any)
        } else {
            Write::delete(pk, bp, Cond::Any)
        });
        Ok(())
    };
    if d.pull_through {
        row(PT_DISTS.to_owned())?;
    }
    if let Some(pt) = d.cached_by {
        row(cached(pt))?;
    }
    Ok(out)
}

impl Store {
    /// Whether any pull-through distribution exists. One query of at most one row.
    pub async fn has_pull_through_distributions(&self) -> Result<bool, StoreError> {
        Ok(!self.t.query(PT_DISTS, Query::prefix("").limit(1)).await?.is_empty())
    }

    /// The ids of the distributions pulls through pull-through distribution `pt` made, in
    /// base-path order. One query.
    pub async fn cached_distributions(&self, pt: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let rows = self.t.query(&cached(pt), Query::prefix("")).await?;
        rows.iter().map(decode).collect()
    }
}
