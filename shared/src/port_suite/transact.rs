//! The table port's transactions: all or nothing, conditions on every item, and one winner
//! among racers.

use crate::ports::{Cond, Query, StoreError, Write};

use super::Adapter;

/// Given one existing item, When a transaction's second condition fails, Then nothing changes.
pub async fn a_failed_condition_changes_nothing(a: &impl Adapter) {
    let t = a.table().await;
    t.put("x", "held", b"h".to_vec(), Cond::Any).await.unwrap();
    let r = t
        .transact(vec![
            Write::put("x", "new", b"n".to_vec(), Cond::Absent),
            Write::put("x", "held", b"h2".to_vec(), Cond::Absent),
        ])
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    assert_eq!(t.get("x", "new").await.unwrap(), None);
    assert_eq!(t.get("x", "held").await.unwrap().unwrap().value, b"h");
}

/// When every condition holds, Then every write lands, across partitions; a put under the
/// item's revision bumps it, and a stale revision fails.
pub async fn every_write_lands(a: &impl Adapter) {
    let t = a.table().await;
    t.put("x", "held", b"h".to_vec(), Cond::Any).await.unwrap();
    let held = t.get("x", "held").await.unwrap().unwrap();
    t.transact(vec![
        Write::put("x", "new", b"n".to_vec(), Cond::Absent),
        Write::put("y", "other", b"o".to_vec(), Cond::Absent),
        Write::delete("x", "held", Cond::Rev(held.rev)),
        Write::delete("x", "never", Cond::Absent),
    ])
    .await
    .unwrap();
    assert_eq!(t.get("x", "new").await.unwrap().unwrap().value, b"n");
    assert!(t.get("y", "other").await.unwrap().is_some());
    assert_eq!(t.get("x", "held").await.unwrap(), None);
    // a put under the item's revision bumps it; a stale revision fails
    let row = t.get("x", "new").await.unwrap().unwrap();
    t.transact(vec![Write::put("x", "new", b"n2".to_vec(), Cond::Rev(row.rev))])
        .await
        .unwrap();
    assert_eq!(t.get("x", "new").await.unwrap().unwrap().rev, row.rev + 1);
    assert!(matches!(
        t.transact(vec![Write::put("x", "new", b"n3".to_vec(), Cond::Rev(row.rev))])
            .await,
        Err(StoreError::Conflict(_))
    ));
}

/// Given an item deleted and written again, round after round, When a write holds a revision
/// read before the deletion, Then it fails, by itself and in a transaction (a revision is
/// never taken up again, so a condition cannot pass on an item it was not read from).
pub async fn a_revision_read_before_a_deletion_never_holds_again(a: &impl Adapter) {
    let t = a.table().await;
    let mut seen = Vec::new();
    for round in 0..20 {
        t.put("x", "again", vec![round], Cond::Absent).await.unwrap();
        let row = t.get("x", "again").await.unwrap().unwrap();
        for old in &seen {
            assert_ne!(row.rev, *old, "round {round} took up an old revision");
            assert!(matches!(
                t.put("x", "again", b"stale".to_vec(), Cond::Rev(*old)).await,
                Err(StoreError::Conflict(_))
            ));
            assert!(matches!(
                t.transact(vec![Write::delete("x", "again", Cond::Rev(*old))]).await,
                Err(StoreError::Conflict(_))
            ));
        }
        seen.push(row.rev);
        t.transact(vec![Write::delete("x", "again", Cond::Rev(row.rev))])
            .await
            .unwrap();
    }
    // a transaction's put of a new item starts afresh too
    t.transact(vec![Write::put("x", "again", b"t".to_vec(), Cond::Absent)])
        .await
        .unwrap();
    let row = t.get("x", "again").await.unwrap().unwrap();
    assert!(!seen.contains(&row.rev));
}

/// An item twice, or nothing at all, is refused before anything is written.
pub async fn malformed_transactions_are_refused(a: &impl Adapter) {
    let t = a.table().await;
    assert!(t
        .transact(vec![
            Write::put("x", "twice", b"1".to_vec(), Cond::Any),
            Write::put("x", "twice", b"2".to_vec(), Cond::Any),
        ])
        .await
        .is_err());
    assert_eq!(t.get("x", "twice").await.unwrap(), None);
    assert!(t.transact(Vec::new()).await.is_err());
}

/// Given 16 racers claiming one name with an item each, Then exactly one claim and its item
/// exist, and no loser's item is left.
pub async fn one_racer_wins(a: &impl Adapter) {
    let t = a.table().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.transact(vec![
                Write::put("names", "one", format!("{i}").into_bytes(), Cond::Absent),
                Write::put("items", format!("{i}"), b"item".to_vec(), Cond::Absent),
            ])
            .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let winner = String::from_utf8(t.get("names", "one").await.unwrap().unwrap().value).unwrap();
    let items: Vec<String> = t
        .query("items", Query::prefix(""))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.sk)
        .collect();
    assert_eq!(items, [winner]);
}
