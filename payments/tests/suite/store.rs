//! The payments store on real SQLite and PostgreSQL: every acquirer callback
//! takes effect exactly once, states only move forward, mismatched callbacks
//! change nothing, and every change is recorded with its time and cause.

use std::sync::Arc;

use payments::ids::AttemptId;
use payments::state::{AttemptState, OrderState};
use payments::store::{Attempt, Callback, CallbackError, CallbackOutcome, NewOrder, Order, PaymentStore};
use streams::{db, testing};

async fn store(url: String) -> PaymentStore {
    let (pool, _) = db::connect(&url).await.expect("the database opens and migrates");
    sqlx::query("INSERT INTO sellers (id, name, is_demo, created_at) VALUES ('sel_payments', 'Shop', 0, 0)")
        .execute(&pool)
        .await
        .unwrap();
    PaymentStore::new(pool)
}

async fn order_with_attempt(s: &PaymentStore, hold: Option<&str>) -> (Order, Attempt) {
    let (order, created) = s
        .create_order(
            &NewOrder {
                seller_id: "sel_payments".into(),
                amount_minor: 149_000,
                currency: "RUB".into(),
                hold_id: hold.map(str::to_owned),
                offer_id: None,
                buyer_id: None,
                reference: None,
            },
            1_000,
        )
        .await
        .unwrap();
    assert!(created);
    let attempt = s.create_attempt(&order, "sandbox", 1_001).await.unwrap();
    (order, attempt)
}

fn callback(attempt: &AttemptId, id: &str, state: AttemptState, at: i64) -> Callback {
    Callback {
        acquirer: "sandbox".into(),
        callback_id: id.into(),
        attempt_id: attempt.clone(),
        amount_minor: 149_000,
        currency: "RUB".into(),
        state,
        at,
    }
}

async fn a_callback_takes_effect_once_however_often_it_arrives(s: PaymentStore) {
    let (order, attempt) = order_with_attempt(&s, None).await;
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (s, cb) = (
                s.clone(),
                callback(&attempt.id, "cb-paid", AttemptState::Succeeded, 2_000),
            );
            tokio::spawn(async move { s.apply_callback(&cb).await.unwrap() })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            CallbackOutcome::Applied { order, .. } => {
                assert_eq!(order, OrderState::Succeeded);
                applied += 1;
            }
            CallbackOutcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    let t = s.transitions(&order.id).await.unwrap();
    let paid: Vec<_> = t.iter().filter(|t| t.to == "succeeded").collect();
    assert_eq!(paid.len(), 2, "one attempt move and one order move: {t:?}");
    assert!(paid
        .iter()
        .all(|t| t.cause == "callback sandbox:cb-paid" && t.at == 2_000));
}

async fn states_only_move_forward_whatever_order_callbacks_arrive_in(s: PaymentStore) {
    let (order, attempt) = order_with_attempt(&s, None).await;
    // Success first, then the earlier "pending" and a contradicting "failed".
    let paid = s
        .apply_callback(&callback(&attempt.id, "3", AttemptState::Succeeded, 3_000))
        .await
        .unwrap();
    assert!(matches!(paid, CallbackOutcome::Applied { .. }));
    for (id, late) in [("1", AttemptState::Pending), ("2", AttemptState::Failed)] {
        let r = s.apply_callback(&callback(&attempt.id, id, late, 3_100)).await.unwrap();
        assert_eq!(
            r,
            CallbackOutcome::Ignored {
                attempt: AttemptState::Succeeded
            }
        );
        // A replay of an ignored callback is a duplicate.
        let again = s.apply_callback(&callback(&attempt.id, id, late, 3_200)).await.unwrap();
        assert_eq!(again, CallbackOutcome::Duplicate);
    }
    assert_eq!(s.order(&order.id).await.unwrap().unwrap().state, OrderState::Succeeded);
    assert_eq!(
        s.attempt(&attempt.id).await.unwrap().unwrap().state,
        AttemptState::Succeeded
    );
    // In order they would have walked forward: pending, then action, then paid.
    let (order, attempt) = order_with_attempt(&s, None).await;
    for (i, st) in [
        AttemptState::Pending,
        AttemptState::RequiresAction,
        AttemptState::Succeeded,
    ]
    .into_iter()
    .enumerate()
    {
        let r = s
            .apply_callback(&callback(&attempt.id, &format!("w{i}"), st, 4_000 + i as i64))
            .await
            .unwrap();
        assert!(
            matches!(r, CallbackOutcome::Applied { attempt, .. } if attempt == st),
            "{r:?}"
        );
    }
    let moves: Vec<String> = s
        .transitions(&order.id)
        .await
        .unwrap()
        .iter()
        .filter(|t| t.subject == "order")
        .map(|t| t.to.clone())
        .collect();
    assert_eq!(moves, ["created", "pending", "requires_action", "succeeded"]);
}

async fn mismatched_or_unknown_callbacks_change_nothing(s: PaymentStore) {
    let (order, attempt) = order_with_attempt(&s, None).await;
    let mut wrong_amount = callback(&attempt.id, "x", AttemptState::Succeeded, 5_000);
    wrong_amount.amount_minor = 1;
    assert!(matches!(
        s.apply_callback(&wrong_amount).await,
        Err(CallbackError::Mismatch)
    ));
    let mut wrong_currency = callback(&attempt.id, "x", AttemptState::Succeeded, 5_000);
    wrong_currency.currency = "USD".into();
    assert!(matches!(
        s.apply_callback(&wrong_currency).await,
        Err(CallbackError::Mismatch)
    ));
    let mut other_acquirer = callback(&attempt.id, "x", AttemptState::Succeeded, 5_000);
    other_acquirer.acquirer = "stripe".into();
    assert!(matches!(
        s.apply_callback(&other_acquirer).await,
        Err(CallbackError::UnknownAttempt | CallbackError::WrongAcquirer)
    ));
    let unknown = callback(&AttemptId::generate(), "x", AttemptState::Succeeded, 5_000);
    assert!(matches!(
        s.apply_callback(&unknown).await,
        Err(CallbackError::UnknownAttempt)
    ));
    assert_eq!(s.order(&order.id).await.unwrap().unwrap().state, OrderState::Created);
    assert_eq!(s.transitions(&order.id).await.unwrap().len(), 2, "only the creations");
    // Nothing was taken in: the genuine callback with that id still applies.
    let genuine = s
        .apply_callback(&callback(&attempt.id, "x", AttemptState::Succeeded, 5_100))
        .await
        .unwrap();
    assert!(matches!(genuine, CallbackOutcome::Applied { .. }));
}

async fn a_success_after_expiry_is_recorded_as_late(s: PaymentStore) {
    let (order, attempt) = order_with_attempt(&s, Some("hld_late")).await;
    assert_eq!(
        s.move_order(&order.id, OrderState::Expired, "hold expired", 6_000)
            .await
            .unwrap(),
        Ok(OrderState::Expired)
    );
    let r = s
        .apply_callback(&callback(&attempt.id, "late", AttemptState::Succeeded, 6_500))
        .await
        .unwrap();
    assert_eq!(
        r,
        CallbackOutcome::Applied {
            attempt: AttemptState::Succeeded,
            order: OrderState::Succeeded,
            late_success: true,
            duplicate: false
        }
    );
    // A refunded order never comes back.
    s.move_order(
        &order.id,
        OrderState::Refunded,
        "refunded: paid after its hold expired",
        7_000,
    )
    .await
    .unwrap()
    .unwrap();
    assert!(s
        .move_order(&order.id, OrderState::Succeeded, "?", 7_100)
        .await
        .unwrap()
        .is_err());
}

async fn one_order_per_hold(s: PaymentStore) {
    let new = NewOrder {
        seller_id: "sel_payments".into(),
        amount_minor: 500,
        currency: "RUB".into(),
        hold_id: Some("hld_once".into()),
        offer_id: None,
        buyer_id: None,
        reference: None,
    };
    let (first, created) = s.create_order(&new, 1).await.unwrap();
    assert!(created);
    let (again, created) = s.create_order(&new, 2).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
}

async fn conflicting_callbacks_racing_leave_one_consistent_answer(s: PaymentStore) {
    let s = Arc::new(s);
    for round in 0..5 {
        let (order, attempt) = order_with_attempt(&s, None).await;
        let a = {
            let (s, cb) = (
                s.clone(),
                callback(&attempt.id, &format!("ok{round}"), AttemptState::Succeeded, 8_000),
            );
            tokio::spawn(async move { s.apply_callback(&cb).await.unwrap() })
        };
        let b = {
            let (s, cb) = (
                s.clone(),
                callback(&attempt.id, &format!("no{round}"), AttemptState::Failed, 8_000),
            );
            tokio::spawn(async move { s.apply_callback(&cb).await.unwrap() })
        };
        let outcomes = [a.await.unwrap(), b.await.unwrap()];
        let applied = outcomes
            .iter()
            .filter(|o| matches!(o, CallbackOutcome::Applied { .. }))
            .count();
        assert_eq!(applied, 1, "{outcomes:?}");
        let attempt = s.attempt(&attempt.id).await.unwrap().unwrap();
        let order = s.order(&order.id).await.unwrap().unwrap();
        let expected = match attempt.state {
            AttemptState::Succeeded => OrderState::Succeeded,
            AttemptState::Failed => OrderState::Failed,
            other => panic!("attempt ended {other}"),
        };
        assert_eq!(order.state, expected);
    }
}

async fn racing_refunds_never_return_more_than_was_paid(s: PaymentStore) {
    let (order, attempt) = order_with_attempt(&s, None).await;
    s.apply_callback(&callback(&attempt.id, "paid", AttemptState::Succeeded, 9_000))
        .await
        .unwrap();
    let s = Arc::new(s);
    // Six refunds of 30 000 race on 149 000: four fit, two must not.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (s, id) = (s.clone(), order.id.clone());
            tokio::spawn(async move { s.record_refund(&id, 30_000, "race", 9_100, None).await })
        })
        .collect();
    let mut made = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => made += 1,
            Err(payments::store::RefundError::TooMuch { refundable }) => assert_eq!(refundable, 29_000),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(made, 4);
    let o = s.order(&order.id).await.unwrap().unwrap();
    assert_eq!((o.state, o.refunded_minor), (OrderState::PartiallyRefunded, 120_000));
    s.record_refund(&order.id, 29_000, "the rest", 9_200, None)
        .await
        .unwrap();
    let o = s.order(&order.id).await.unwrap().unwrap();
    assert_eq!((o.state, o.refunded_minor), (OrderState::Refunded, 149_000));
    assert!(s.record_refund(&order.id, 1, "more", 9_300, None).await.is_err());
}

/// Two attempts of one order both succeed: the second is marked a
/// duplicate, listed for its refund, and its refund is recorded once
/// however many nodes race to record it, never counting as the order's.
async fn a_duplicate_charge_is_recorded_once_however_many_race(s: PaymentStore) {
    let (order, first) = order_with_attempt(&s, None).await;
    let second = s.create_attempt(&order, "sandbox", 1_002).await.unwrap();
    s.apply_callback(&callback(&first.id, "paid-1", AttemptState::Succeeded, 9_000))
        .await
        .unwrap();
    let again = s
        .apply_callback(&callback(&second.id, "paid-2", AttemptState::Succeeded, 9_001))
        .await
        .unwrap();
    assert!(
        matches!(again, CallbackOutcome::Applied { duplicate: true, .. }),
        "{again:?}"
    );
    let listed = s.unrefunded_duplicates(i64::MAX, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        vec![second.id.clone()]
    );
    let dup = s.attempt(&second.id).await.unwrap().unwrap();
    assert!(dup.duplicate && !s.attempt(&first.id).await.unwrap().unwrap().duplicate);
    let s = Arc::new(s);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (s, dup, order) = (s.clone(), dup.clone(), order.clone());
            tokio::spawn(async move { s.record_duplicate_refund(&dup, &order, 9_100).await })
        })
        .collect();
    let mut recorded = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert!(s.unrefunded_duplicates(i64::MAX, 10).await.unwrap().is_empty());
    let o = s.order(&order.id).await.unwrap().unwrap();
    assert_eq!((o.state, o.refunded_minor), (OrderState::Succeeded, 0));
}

/// Reconciliation's queue: open attempts at banks and the sandbox, least
/// recently asked first, so a crowd of old ones never starves a new one;
/// too old is left alone.
async fn open_attempts_take_turns(s: PaymentStore) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, a) = order_with_attempt(&s, None).await;
        s.set_account(&a.id, "acq_test").await.unwrap();
        ids.push(a.id);
    }
    let (_, sandbox) = order_with_attempt(&s, None).await;
    ids.push(sandbox.id);
    let mut seen = Vec::new();
    for round in 0..4 {
        let due = s.open_attempts(100_000, 0, 1).await.unwrap();
        assert_eq!(due.len(), 1);
        assert!(!seen.contains(&due[0].id), "round {round}: {:?} again", due[0].id);
        s.touch_attempt(&due[0].id, 50_000 + round).await.unwrap();
        seen.push(due[0].id.clone());
    }
    seen.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(seen, ids, "every attempt had its turn, the sandbox's too");
    // Asked since `before`: not due; made before the horizon: never.
    assert!(s.open_attempts(40_000, 0, 10).await.unwrap().is_empty());
    assert!(s.open_attempts(100_000, 2_000, 10).await.unwrap().is_empty());
}

macro_rules! on_both_databases {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::store(streams::testing::fresh_sqlite()).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::store(super::testing::fresh_postgres().await).await).await;
                }
            )*
        }
    };
}

on_both_databases!(
    a_callback_takes_effect_once_however_often_it_arrives,
    states_only_move_forward_whatever_order_callbacks_arrive_in,
    mismatched_or_unknown_callbacks_change_nothing,
    a_success_after_expiry_is_recorded_as_late,
    one_order_per_hold,
    conflicting_callbacks_racing_leave_one_consistent_answer,
    racing_refunds_never_return_more_than_was_paid,
    a_duplicate_charge_is_recorded_once_however_many_race,
    open_attempts_take_turns,
);
