//! The Redis stock engine: one Lua script per operation, so each operation on
//! an offer is atomic in Redis whatever the number of gateway nodes.
//!
//! Keys, under a configurable prefix `P`:
//! - `P:o:{offer}`, `P:o:{offer}:b`, `P:o:{offer}:h`, `P:o:{offer}:r` — the
//!   offer's counters, buyers, holds and request ids (see `lua/prelude.lua`);
//! - `P:exp` — every live hold, scored by expiry: the sweeper's queue.
//!
//! The expiry queue is shared by all offers, so the scripts touch two hash
//! slots: Haul's Redis engine targets a single primary (with replicas or
//! Sentinel), not Redis Cluster.

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

use super::{
    Adjust, AdjustRefusal, Committed, EngineError, Expired, Hold, HoldError, HoldStatus, Inventory, OfferStock,
    Refusal, ReserveRequest, Reserved, StockLevels,
};
use crate::clock::Millis;
use crate::ids::{BuyerId, HoldId, OfferId};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("lua/prelude.lua"), include_str!($file)))
    };
}

struct Scripts {
    load: Script,
    reserve: Script,
    extend: Script,
    release: Script,
    commit: Script,
    expire: Script,
    close: Script,
    adjust: Script,
}

/// The shared stock engine on Redis.
pub struct RedisInventory {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
}

fn protocol(what: impl Into<String>) -> EngineError {
    EngineError::Protocol(what.into())
}

fn num(s: &str) -> Result<i64, EngineError> {
    s.parse().map_err(|_| protocol(format!("not a number: {s:?}")))
}

fn levels_at(v: &[String], i: usize) -> Result<StockLevels, EngineError> {
    let quantity = num(v.get(i).ok_or_else(|| protocol("missing levels"))?)?;
    let held = num(v.get(i + 1).ok_or_else(|| protocol("missing levels"))?)?;
    let sold = num(v.get(i + 2).ok_or_else(|| protocol("missing levels"))?)?;
    Ok(StockLevels {
        quantity,
        held,
        sold,
        left: quantity - held - sold,
    })
}

/// Parses a hold record `buyer|qty|expires_at|status`.
fn parse_hold(offer: &OfferId, id: &str, rec: &str) -> Result<Hold, EngineError> {
    let bad = || protocol(format!("bad hold record {rec:?}"));
    let mut parts = rec.split('|');
    let (Some(buyer), Some(qty), Some(exp), Some(st), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(Hold {
        id: HoldId::parse(id).map_err(|_| bad())?,
        offer_id: offer.clone(),
        buyer_id: BuyerId::parse(buyer).map_err(|_| bad())?,
        quantity: qty.parse().map_err(|_| bad())?,
        expires_at: exp.parse().map_err(|_| bad())?,
        status: HoldStatus::from_code(st).ok_or_else(bad)?,
    })
}

fn hold_at(offer: &OfferId, v: &[String], i: usize) -> Result<Hold, EngineError> {
    match (v.get(i), v.get(i + 1)) {
        (Some(id), Some(rec)) => parse_hold(offer, id, rec),
        _ => Err(protocol("missing hold")),
    }
}

fn not_active(v: &[String]) -> Result<HoldError, EngineError> {
    let code = v.get(1).map(String::as_str).unwrap_or("");
    HoldStatus::from_code(code)
        .map(HoldError::NotActive)
        .ok_or_else(|| protocol(format!("bad status {code:?}")))
}

/// How Haul's Redis connections behave when Redis goes away: every
/// connection attempt and every command gives up after `timeout`; a lost
/// command connection is made again by the next command (one attempt, no
/// backoff: the command fails at once if Redis is still away), and the
/// realtime bus's subscription is tried again at most `reconnect_max`
/// apart. So an outage of any length answers fast and clearly, and work
/// resumes as soon as Redis answers — never the library's default backoff,
/// which waits seconds, then minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisPolicy {
    pub timeout: std::time::Duration,
    pub reconnect_max: std::time::Duration,
}

impl Default for RedisPolicy {
    fn default() -> Self {
        RedisPolicy {
            timeout: std::time::Duration::from_secs(1),
            reconnect_max: std::time::Duration::from_millis(100),
        }
    }
}

impl RedisPolicy {
    /// The connection manager's settings under this policy: a connection
    /// is attempted once per need (the library's first retry would wait a
    /// whole second).
    pub fn manager(&self) -> redis::aio::ConnectionManagerConfig {
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(0)
    }
}

impl RedisInventory {
    /// Connects (with automatic reconnection, under the default
    /// [`RedisPolicy`]) to `url`; every key starts with `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, EngineError> {
        Self::connect_with(url, prefix, RedisPolicy::default()).await
    }

    /// Connects under `policy`.
    pub async fn connect_with(url: &str, prefix: &str, policy: RedisPolicy) -> Result<Self, EngineError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new_with_config(client, policy.manager()).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            scripts: Scripts {
                load: script!("lua/load.lua"),
                reserve: script!("lua/reserve.lua"),
                extend: script!("lua/extend.lua"),
                release: script!("lua/release.lua"),
                commit: script!("lua/commit.lua"),
                expire: script!("lua/expire.lua"),
                close: script!("lua/close.lua"),
                adjust: script!("lua/adjust.lua"),
            },
        })
    }

    fn expiry_key(&self) -> String {
        format!("{}:exp", self.prefix)
    }

    /// The five keys every per-offer script takes, in the prelude's order.
    fn keys(&self, offer: &OfferId) -> [String; 5] {
        let base = format!("{}:o:{{{}}}", self.prefix, offer);
        [
            base.to_string(),
            format!("{base}:b"),
            format!("{base}:h"),
            format!("{base}:r"),
            self.expiry_key(),
        ]
    }

    async fn run(&self, script: &Script, offer: &OfferId, args: &[String]) -> Result<Vec<String>, EngineError> {
        let mut inv = script.prepare_invoke();
        for k in self.keys(offer) {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        Ok(inv.invoke_async(&mut conn).await?)
    }

    async fn run_one(&self, script: &Script, offer: &OfferId, args: &[String]) -> Result<String, EngineError> {
        let mut inv = script.prepare_invoke();
        for k in self.keys(offer) {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let mut conn = self.conn.clone();
        Ok(inv.invoke_async(&mut conn).await?)
    }
}

#[async_trait]
impl Inventory for RedisInventory {
    async fn load(&self, stock: &OfferStock) -> Result<bool, EngineError> {
        let mut args = vec![
            stock.quantity.to_string(),
            stock.per_buyer_limit.to_string(),
            stock.starts_at.to_string(),
            stock.ends_at.to_string(),
        ];
        for s in &stock.sold {
            args.push(s.buyer.to_string());
            args.push(s.units.to_string());
        }
        Ok(self.run_one(&self.scripts.load, &stock.offer, &args).await? == "1")
    }

    async fn reserve(&self, req: &ReserveRequest) -> Result<Result<Reserved, Refusal>, EngineError> {
        let args = [
            req.buyer.to_string(),
            req.quantity.to_string(),
            req.ttl_ms.to_string(),
            req.now.to_string(),
            req.request_id.clone(),
            req.hold_id.to_string(),
            req.offer.to_string(),
            req.group.as_ref().map(|g| g.key.clone()).unwrap_or_default(),
            req.group.as_ref().map_or(0, |g| g.units).to_string(),
        ];
        let v = self.run(&self.scripts.reserve, &req.offer, &args).await?;
        let arg_num = || num(v.get(1).map(String::as_str).unwrap_or(""));
        Ok(match v.first().map(String::as_str) {
            Some(tag @ ("held" | "replay")) => {
                let hold = hold_at(&req.offer, &v, 1)?;
                let levels = levels_at(&v, 3)?;
                if tag == "replay" && hold.quantity != req.quantity {
                    Err(Refusal::RequestIdReused)
                } else {
                    Ok(Reserved {
                        hold,
                        units_left: levels.left,
                        replayed: tag == "replay",
                    })
                }
            }
            Some("not_loaded") => Err(Refusal::NotLoaded),
            Some("ended") => Err(Refusal::Ended),
            Some("not_started") => Err(Refusal::NotStarted),
            Some("sold_out") => Err(Refusal::SoldOut),
            Some("over_limit") => Err(Refusal::OverLimit { remaining: arg_num()? }),
            Some("over_group") => Err(Refusal::OverGroupLimit { remaining: arg_num()? }),
            Some("not_enough") => Err(Refusal::NotEnoughStock { left: arg_num()? }),
            other => return Err(protocol(format!("reserve answered {other:?}"))),
        })
    }

    async fn extend(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        ttl_ms: i64,
        now: Millis,
    ) -> Result<Result<Hold, HoldError>, EngineError> {
        let args = [hold.to_string(), ttl_ms.to_string(), now.to_string(), offer.to_string()];
        let v = self.run(&self.scripts.extend, offer, &args).await?;
        Ok(match v.first().map(String::as_str) {
            Some("ok") => Ok(hold_at(offer, &v, 1)?),
            Some("not_found") => Err(HoldError::NotFound),
            Some("not_active") => Err(not_active(&v)?),
            other => return Err(protocol(format!("extend answered {other:?}"))),
        })
    }

    async fn release(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        buyer: Option<&BuyerId>,
    ) -> Result<Result<(Hold, StockLevels), HoldError>, EngineError> {
        let args = [
            hold.to_string(),
            buyer.map(|b| b.to_string()).unwrap_or_default(),
            offer.to_string(),
        ];
        let v = self.run(&self.scripts.release, offer, &args).await?;
        Ok(match v.first().map(String::as_str) {
            Some("ok") => Ok((hold_at(offer, &v, 1)?, levels_at(&v, 3)?)),
            Some("not_found") => Err(HoldError::NotFound),
            Some("not_owner") => Err(HoldError::NotOwner),
            Some("not_active") => Err(not_active(&v)?),
            other => return Err(protocol(format!("release answered {other:?}"))),
        })
    }

    async fn commit(
        &self,
        offer: &OfferId,
        hold: &HoldId,
        now: Millis,
    ) -> Result<Result<(Hold, Committed), HoldError>, EngineError> {
        let args = [hold.to_string(), now.to_string(), offer.to_string()];
        let v = self.run(&self.scripts.commit, offer, &args).await?;
        Ok(match v.first().map(String::as_str) {
            Some("ok") => {
                let h = hold_at(offer, &v, 1)?;
                let levels = levels_at(&v, 3)?;
                let newly = v.get(6).map(String::as_str) == Some("1");
                Ok((h, Committed { newly, levels }))
            }
            Some("not_found") => Err(HoldError::NotFound),
            Some("not_active") => Err(not_active(&v)?),
            other => return Err(protocol(format!("commit answered {other:?}"))),
        })
    }

    async fn hold(&self, offer: &OfferId, hold: &HoldId) -> Result<Option<Hold>, EngineError> {
        let mut conn = self.conn.clone();
        let rec: Option<String> = conn.hget(&self.keys(offer)[2], hold.as_str()).await?;
        rec.map(|r| parse_hold(offer, hold.as_str(), &r)).transpose()
    }

    async fn due(&self, now: Millis, max: usize) -> Result<Vec<(OfferId, HoldId)>, EngineError> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn
            .zrangebyscore_limit(self.expiry_key(), "-inf", now, 0, max as isize)
            .await?;
        let mut out = Vec::with_capacity(members.len());
        for member in members {
            let parsed = member
                .split_once('|')
                .and_then(|(o, h)| Some((OfferId::parse(o).ok()?, HoldId::parse(h).ok()?)));
            match parsed {
                Some(ids) => out.push(ids),
                // Not a member Haul writes; drop it so it cannot block the queue.
                None => {
                    let _: () = conn.zrem(self.expiry_key(), &member).await?;
                }
            }
        }
        Ok(out)
    }

    async fn expire(&self, offer: &OfferId, hold: &HoldId, now: Millis) -> Result<Option<Expired>, EngineError> {
        let args = [hold.to_string(), now.to_string(), offer.to_string()];
        let v = self.run(&self.scripts.expire, offer, &args).await?;
        if v.first().map(String::as_str) != Some("expired") {
            return Ok(None);
        }
        Ok(Some(Expired {
            hold: hold_at(offer, &v, 1)?,
            levels: levels_at(&v, 3)?,
        }))
    }

    async fn close(&self, offer: &OfferId, now: Millis, retain_ms: i64) -> Result<(), EngineError> {
        self.run_one(&self.scripts.close, offer, &[now.to_string(), retain_ms.to_string()])
            .await?;
        Ok(())
    }

    async fn adjust(
        &self,
        offer: &OfferId,
        change: &Adjust,
    ) -> Result<Result<StockLevels, AdjustRefusal>, EngineError> {
        let arg = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
        let args = [arg(change.quantity), arg(change.per_buyer_limit), arg(change.ends_at)];
        let v = self.run(&self.scripts.adjust, offer, &args).await?;
        Ok(match v.first().map(String::as_str) {
            Some("ok") => Ok(levels_at(&v, 1)?),
            Some("not_loaded") => Err(AdjustRefusal::NotLoaded),
            Some("closed") => Err(AdjustRefusal::Closed),
            Some("below_taken") => Err(AdjustRefusal::BelowTaken {
                taken: num(v.get(1).ok_or_else(|| protocol("missing units"))?)?,
            }),
            other => return Err(protocol(format!("adjust answered {other:?}"))),
        })
    }

    async fn levels(&self, offer: &OfferId) -> Result<Option<StockLevels>, EngineError> {
        let mut conn = self.conn.clone();
        let v: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(&self.keys(offer)[0])
            .arg("q")
            .arg("held")
            .arg("sold")
            .query_async(&mut conn)
            .await?;
        Ok(match v.as_slice() {
            [Some(quantity), Some(held), Some(sold)] => Some(StockLevels {
                quantity: *quantity,
                held: *held,
                sold: *sold,
                left: quantity - held - sold,
            }),
            _ => None,
        })
    }

    async fn live_holds(&self) -> Result<u64, EngineError> {
        let mut conn = self.conn.clone();
        Ok(conn.zcard(self.expiry_key()).await?)
    }

    async fn ping(&self) -> Result<(), EngineError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}
