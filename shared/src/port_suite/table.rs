//! The table port: conditional writes, queries, expiry and concurrent compare-and-set.

use crate::ports::{Cond, Query, Row, StoreError};

use super::Adapter;

fn sks(rows: Vec<Row>) -> Vec<String> {
    rows.into_iter().map(|r| r.sk).collect()
}

/// Given an empty table, When an item is written only-if-absent twice, Then the second fails;
/// revisions guard updates and deletes.
pub async fn conditional_writes(a: &impl Adapter) {
    let t = a.table().await;
    assert_eq!(t.get("p", "a").await.unwrap(), None);
    let r1 = t.put("p", "a", b"1".to_vec(), Cond::Absent).await.unwrap();
    assert!(r1 >= 1);
    assert!(matches!(
        t.put("p", "a", b"2".to_vec(), Cond::Absent).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(t.get("p", "a").await.unwrap().unwrap().value, b"1");
    assert_eq!(t.get("p", "a").await.unwrap().unwrap().rev, r1);
    // revisions guard updates, and grow by one with each write
    assert!(matches!(
        t.put("p", "a", b"x".to_vec(), Cond::Rev(r1 + 7)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(t.put("p", "a", b"2".to_vec(), Cond::Rev(r1)).await.unwrap(), r1 + 1);
    assert_eq!(t.put("p", "a", b"3".to_vec(), Cond::Any).await.unwrap(), r1 + 2);
    assert!(matches!(
        t.put("p", "zz", b"x".to_vec(), Cond::Rev(r1)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        t.delete("p", "a", Cond::Rev(r1)).await,
        Err(StoreError::Conflict(_))
    ));
    t.delete("p", "a", Cond::Rev(r1 + 2)).await.unwrap();
    assert_eq!(t.get("p", "a").await.unwrap(), None);
    t.delete("p", "a", Cond::Any).await.unwrap();
}

/// Queries: one partition, prefix, order, after, reverse, limit.
pub async fn queries(a: &impl Adapter) {
    let t = a.table().await;
    for sk in ["t#b", "t#a", "t#c", "u#a", "s#z"] {
        t.put("q", sk, sk.as_bytes().to_vec(), Cond::Any).await.unwrap();
    }
    t.put("q2", "t#0", b"other".to_vec(), Cond::Any).await.unwrap();
    t.put("qq", "t#0", b"other".to_vec(), Cond::Any).await.unwrap();
    assert_eq!(
        sks(t.query("q", Query::prefix("t#")).await.unwrap()),
        ["t#a", "t#b", "t#c"]
    );
    assert_eq!(sks(t.query("q", Query::prefix("")).await.unwrap()).len(), 5);
    assert_eq!(
        sks(t
            .query("q", Query::prefix("t#").after(Some("t#a".into())))
            .await
            .unwrap()),
        ["t#b", "t#c"]
    );
    assert_eq!(
        sks(t.query("q", Query::prefix("t#").reverse()).await.unwrap()),
        ["t#c", "t#b", "t#a"]
    );
    assert_eq!(
        sks(t
            .query("q", Query::prefix("t#").reverse().after(Some("t#c".into())))
            .await
            .unwrap()),
        ["t#b", "t#a"]
    );
    assert_eq!(
        sks(t.query("q", Query::prefix("t#").limit(2)).await.unwrap()),
        ["t#a", "t#b"]
    );
    assert_eq!(
        sks(t.query("q", Query::prefix("t#").reverse().limit(1)).await.unwrap()),
        ["t#c"]
    );
    assert!(t.query("none", Query::prefix("")).await.unwrap().is_empty());
}

/// An expired item reads as absent everywhere, before any sweep removes it; it can be written
/// again only-if-absent, and a plain write clears an expiry.
pub async fn expiry(a: &impl Adapter) {
    let t = a.table().await;
    let now = crate::ports::unix_now();
    let rev = t
        .put_expiring("e", "old", b"x".to_vec(), Cond::Absent, Some(now - 5))
        .await
        .unwrap();
    t.put_expiring("e", "new", b"y".to_vec(), Cond::Absent, Some(now + 3600))
        .await
        .unwrap();
    t.put("e", "keep", b"z".to_vec(), Cond::Any).await.unwrap();
    assert_eq!(t.get("e", "old").await.unwrap(), None);
    assert_eq!(sks(t.query("e", Query::prefix("")).await.unwrap()), ["keep", "new"]);
    assert_eq!(sks(t.query("e", Query::prefix("").limit(1)).await.unwrap()), ["keep"]);
    assert_eq!(
        sks(t.query("e", Query::prefix("").reverse()).await.unwrap()),
        ["new", "keep"]
    );
    assert_eq!(t.get("e", "new").await.unwrap().unwrap().value, b"y");
    assert!(matches!(
        t.put("e", "old", b"x".to_vec(), Cond::Rev(rev)).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        t.delete("e", "old", Cond::Rev(rev)).await,
        Err(StoreError::Conflict(_))
    ));
    t.delete("e", "old", Cond::Absent).await.unwrap();
    assert!(matches!(
        t.put("e", "new", b"y2".to_vec(), Cond::Absent).await,
        Err(StoreError::Conflict(_))
    ));
    // written again, only-if-absent: a new item, with a later revision and no expiry
    let again = t.put("e", "old", b"back".to_vec(), Cond::Absent).await.unwrap();
    assert!(again > 0);
    assert_eq!(t.get("e", "old").await.unwrap().unwrap().value, b"back");
    // a later expiring write, and a plain write that clears the expiry again
    let r = t
        .put_expiring("e", "old", b"gone".to_vec(), Cond::Rev(again), Some(now - 1))
        .await
        .unwrap();
    assert!(r > again);
    assert_eq!(t.get("e", "old").await.unwrap(), None);
    t.put("e", "old", b"kept".to_vec(), Cond::Any).await.unwrap();
    assert_eq!(t.get("e", "old").await.unwrap().unwrap().value, b"kept");
    // the live one's expiry can be moved by a conditional write
    let row = t.get("e", "new").await.unwrap().unwrap();
    t.put_expiring("e", "new", b"y3".to_vec(), Cond::Rev(row.rev), Some(now - 1))
        .await
        .unwrap();
    assert_eq!(sks(t.query("e", Query::prefix("")).await.unwrap()), ["keep", "old"]);
}

/// N tasks increment one counter with compare-and-set; no update is lost.
pub async fn concurrent_updates(a: &impl Adapter) {
    let t = a.table().await;
    t.put("c", "n", b"0".to_vec(), Cond::Any).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let row = t.get("c", "n").await.unwrap().unwrap();
                    let n: u64 = String::from_utf8(row.value).unwrap().parse().unwrap();
                    match t
                        .put("c", "n", (n + 1).to_string().into_bytes(), Cond::Rev(row.rev))
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict(_)) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(t.get("c", "n").await.unwrap().unwrap().value, b"80");
}
