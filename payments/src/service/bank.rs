//! One bank call at a time: a [`Call`] an [`Acquirer`] built goes out
//! through the [`Transport`], and its answer is read back by the same
//! protocol. A call that runs out of time has an unknown result and is
//! never taken as a refusal.

use crate::accounts::Credentials;
use crate::acquirers::{self, Acquirer, AnswerError, Bank, Call, Charge, InitOutcome, Lookup, Payment};

use super::Source;

/// Why a call got no answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Nothing reached the bank (the connection was refused): nothing was made.
    #[error("could not connect: {0}")]
    Connect(#[source] Source),
    /// Sent, but no whole answer came (a timeout, a broken connection):
    /// anything may have happened.
    #[error("no clear answer: {0}")]
    NoAnswer(#[source] Source),
}

/// What a bank answered to a call: its HTTP status and body.
pub type Answer = Result<(u16, Vec<u8>), TransportError>;

/// Carries bank calls (the gateway's HTTP client, with a time limit).
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends `call` to `bank`'s API; the HTTP status and body of the answer.
    async fn send(&self, bank: Bank, call: Call) -> Answer;
}

/// Why a bank call did not give what was asked.
#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Answer(#[from] AnswerError),
    /// The payment to capture or void is not known to the bank.
    #[error("the payment is not found")]
    NotFound,
}

/// An account at an acquirer this build has no protocol for.
#[derive(Debug, thiserror::Error)]
#[error("no protocol for the acquirer {0:?}")]
pub struct NoProtocol(pub String);

/// The protocol of an account's bank under its credentials.
pub fn adapter(c: &Credentials) -> Result<Box<dyn Acquirer>, NoProtocol> {
    acquirers::for_account(c).ok_or_else(|| NoProtocol(c.account.acquirer.clone()))
}

async fn send(t: &dyn Transport, bank: &dyn Acquirer, call: Call) -> Answer {
    t.send(bank.bank(), call).await
}

/// Creates the payment at the bank.
pub async fn init(t: &dyn Transport, bank: &dyn Acquirer, charge: &Charge<'_>) -> InitOutcome {
    match send(t, bank, bank.init(charge)).await {
        Ok((status, body)) => bank.parse_init(status, &body),
        Err(TransportError::Connect(e)) => InitOutcome::Unavailable {
            why: format!("could not connect: {e}"),
        },
        Err(TransportError::NoAnswer(e)) => InitOutcome::Unknown {
            why: format!("no clear answer: {e}"),
        },
    }
}

/// The state of the payment the creation answered as `acquirer_ref` (see
/// [`Acquirer::lookup`]).
pub async fn lookup(
    t: &dyn Transport,
    bank: &dyn Acquirer,
    reference: &str,
    acquirer_ref: &str,
) -> Result<Lookup, BankError> {
    let (status, body) = send(t, bank, bank.lookup(reference, acquirer_ref)).await?;
    Ok(bank.parse_lookup(Some(acquirer_ref), status, &body)?)
}

/// Whether a creation with no clear answer made a payment (see
/// [`Acquirer::find`]).
pub async fn find(t: &dyn Transport, bank: &dyn Acquirer, charge: &Charge<'_>) -> Result<Lookup, BankError> {
    let (status, body) = send(t, bank, bank.find(charge)).await?;
    Ok(bank.parse_lookup(None, status, &body)?)
}

/// Captures a payment that waits for it, when the bank has that step; the
/// payment as the capture left it.
pub async fn capture(
    t: &dyn Transport,
    bank: &dyn Acquirer,
    payment: &Payment,
    amount_minor: i64,
    currency: &str,
) -> Result<Option<Payment>, BankError> {
    let Some(call) = bank.capture(payment, amount_minor, currency) else {
        return Ok(None);
    };
    payment_call(t, bank, payment, call).await.map(Some)
}

/// Lets go of an authorized payment (see [`Acquirer::void`]); the payment
/// as that left it.
pub async fn void(t: &dyn Transport, bank: &dyn Acquirer, payment: &Payment) -> Result<Option<Payment>, BankError> {
    let Some(call) = bank.void(payment) else {
        return Ok(None);
    };
    payment_call(t, bank, payment, call).await.map(Some)
}

/// Cancels a replaced payment where the bank can (see
/// [`Acquirer::abandon`]); the payment as that left it.
pub async fn abandon(t: &dyn Transport, bank: &dyn Acquirer, acquirer_ref: &str) -> Result<Option<Payment>, BankError> {
    let Some(call) = bank.abandon(acquirer_ref) else {
        return Ok(None);
    };
    let (status, body) = send(t, bank, call).await?;
    match bank.parse_lookup(Some(acquirer_ref), status, &body)? {
        Lookup::Found(p) => Ok(Some(p)),
        Lookup::NotFound => Err(BankError::NotFound),
    }
}

/// A call whose answer reads like a lookup of `payment`.
async fn payment_call(
    t: &dyn Transport,
    bank: &dyn Acquirer,
    payment: &Payment,
    call: Call,
) -> Result<Payment, BankError> {
    let (status, body) = send(t, bank, call).await?;
    match bank.parse_lookup(Some(&payment.payment_id), status, &body)? {
        Lookup::Found(p) => Ok(p),
        Lookup::NotFound => Err(BankError::NotFound),
    }
}

/// Refunds `amount_minor` of a paid payment; `key` makes a repeat of the
/// same refund harmless where the bank supports it.
pub async fn refund(
    t: &dyn Transport,
    bank: &dyn Acquirer,
    payment_id: &str,
    amount_minor: i64,
    currency: &str,
    key: &str,
) -> Result<(), BankError> {
    let call = bank.refund(payment_id, amount_minor, currency, key);
    let (status, body) = send(t, bank, call).await?;
    Ok(bank.parse_refund(status, &body)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::acquirers::tbank::Terminal;

    /// Answers each call with the next canned result and records where it went.
    struct Canned {
        answers: Mutex<Vec<Answer>>,
        sent: Mutex<Vec<(Bank, String)>>,
    }

    impl Canned {
        fn new(answers: Vec<Answer>) -> Self {
            Self {
                answers: Mutex::new(answers.into_iter().rev().collect()),
                sent: Mutex::default(),
            }
        }
    }

    #[async_trait::async_trait]
    impl Transport for Canned {
        async fn send(&self, bank: Bank, call: Call) -> Answer {
            self.sent.lock().unwrap().push((bank, call.path));
            self.answers.lock().unwrap().pop().expect("an answer for every call")
        }
    }

    fn terminal() -> Terminal {
        Terminal {
            terminal_key: "T1".into(),
            password: "pw".into(),
            taxation: None,
        }
    }

    fn io() -> Source {
        Box::new(std::io::Error::other("cut"))
    }

    #[tokio::test]
    async fn a_refund_answer_is_read_into_a_typed_outcome() {
        let t = Canned::new(vec![
            Ok((200, br#"{"Success":true,"Status":"REFUNDED"}"#.to_vec())),
            Ok((200, br#"{"Success":false,"ErrorCode":"7","Message":"no"}"#.to_vec())),
            Ok((502, b"bad gateway".to_vec())),
            Err(TransportError::NoAnswer(io())),
        ]);
        let bank = terminal();
        assert!(refund(&t, &bank, "p1", 100, "RUB", "k").await.is_ok());
        let refused = refund(&t, &bank, "p1", 100, "RUB", "k").await.unwrap_err();
        assert!(
            matches!(&refused, BankError::Answer(AnswerError::Refused(code, _)) if code == "7"),
            "{refused:?}"
        );
        let outage = refund(&t, &bank, "p1", 100, "RUB", "k").await.unwrap_err();
        assert!(
            matches!(outage, BankError::Answer(AnswerError::Http(502))),
            "{outage:?}"
        );
        let lost = refund(&t, &bank, "p1", 100, "RUB", "k").await.unwrap_err();
        assert!(
            matches!(lost, BankError::Transport(TransportError::NoAnswer(_))),
            "{lost:?}"
        );
        let sent = t.sent.lock().unwrap();
        assert!(
            sent.iter().all(|(b, path)| *b == Bank::TBank && path == "/Cancel"),
            "{sent:?}"
        );
    }

    #[tokio::test]
    async fn a_creation_that_never_connected_is_an_outage_and_a_lost_answer_is_unknown() {
        let t = Canned::new(vec![
            Err(TransportError::Connect(io())),
            Err(TransportError::NoAnswer(io())),
        ]);
        let bank = terminal();
        let charge = Charge {
            reference: "pat_1",
            amount_minor: 100,
            currency: "RUB",
            description: "d",
            items: &[],
            email: None,
            phone: None,
            success_url: "http://x/ok",
            fail_url: "http://x/fail",
            notification_url: "http://x/n",
            locale: None,
        };
        assert!(matches!(
            init(&t, &bank, &charge).await,
            InitOutcome::Unavailable { .. }
        ));
        assert!(matches!(init(&t, &bank, &charge).await, InitOutcome::Unknown { .. }));
    }
}
