//! Per-user limits on model spend: requests per minute (`HOMI_USER_RPM`,
//! counted in this process) and tokens per UTC day
//! (`HOMI_USER_TOKENS_PER_DAY`, counted in the store, so every process on
//! one database shares the count). Beyond either, a call is refused with
//! `RateLimited` and the wait: until the minute's allowance refills, or
//! until midnight UTC.
//!
//! [`Memory`](crate::Memory) and [`Chat`](crate::chat::Chat) admit each
//! user-scoped call that spends the model before it does, and charge what it
//! spent after; an extraction job (work the user already asked for) is
//! charged but never refused. Unlimited [`Budgets`] (the default) cost
//! nothing: no store access, no limiter.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{Error, Result};
use crate::store::usage::UsageStore;

/// The per-user limits and where spend is counted. Cheap to clone.
#[derive(Clone, Default)]
pub struct Budgets {
    rpm: Option<(u32, Arc<DefaultKeyedRateLimiter<String>>)>,
    tokens_per_day: u64,
    usage: Option<Arc<dyn UsageStore>>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets")
            .field("rpm", &self.rpm.as_ref().map(|(n, _)| *n))
            .field("tokens_per_day", &self.tokens_per_day)
            .finish()
    }
}

/// The UTC day of `t`, as the store keys spend.
fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// The wait until the next UTC midnight.
fn until_tomorrow(now: DateTime<Utc>) -> Duration {
    let tomorrow = (now + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    tomorrow
        .and_then(|t| (t - now).to_std().ok())
        .unwrap_or(Duration::from_secs(3600))
}

impl Budgets {
    /// No limits.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// `rpm` requests per minute and `tokens_per_day` tokens per user (0:
    /// no limit), spend counted in `usage`.
    pub fn new(rpm: u32, tokens_per_day: u64, usage: Option<Arc<dyn UsageStore>>) -> Result<Self> {
        if tokens_per_day > 0 && usage.is_none() {
            return Err(Error::config(
                "HOMI_USER_TOKENS_PER_DAY",
                "this store keeps no spend: use the SQLite or Postgres store",
            ));
        }
        Ok(Self {
            rpm: NonZeroU32::new(rpm)
                .map(|n| (rpm, Arc::new(RateLimiter::keyed(Quota::per_minute(n))))),
            tokens_per_day,
            usage: usage.filter(|_| tokens_per_day > 0),
        })
    }

    /// The limits `config` sets (`HOMI_USER_RPM`, `HOMI_USER_TOKENS_PER_DAY`).
    pub fn from_config(config: &crate::Config, usage: Option<Arc<dyn UsageStore>>) -> Result<Self> {
        Self::new(
            config.memory.user_rpm,
            config.memory.user_tokens_per_day,
            usage,
        )
    }

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        self.rpm.is_some() || self.tokens_per_day > 0
    }

    /// Lets `user` make one more model-spending call, or says how long to
    /// wait.
    pub async fn admit(&self, user: &str) -> Result<()> {
        if let Some((n, limiter)) = &self.rpm
            && let Err(not_until) = limiter.check_key(&user.to_owned())
        {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(Error::RateLimited {
                message: format!(
                    "more than {n} model requests a minute for this user (HOMI_USER_RPM)"
                ),
                retry_after: wait.max(Duration::from_secs(1)),
            });
        }
        if let Some(usage) = &self.usage {
            let now = Utc::now();
            if usage.tokens(user, &day(now)).await? >= self.tokens_per_day {
                return Err(Error::RateLimited {
                    message: format!(
                        "this user's {} model tokens for today are spent (HOMI_USER_TOKENS_PER_DAY)",
                        self.tokens_per_day
                    ),
                    retry_after: until_tomorrow(now),
                });
            }
        }
        Ok(())
    }

    /// Adds `tokens` to `user`'s spend today. A failure to count is logged:
    /// the answer it was for has been given.
    pub async fn charge(&self, user: &str, tokens: u64) {
        let Some(usage) = &self.usage else { return };
        if tokens == 0 {
            return;
        }
        if let Err(e) = usage.add_tokens(user, &day(Utc::now()), tokens).await {
            tracing::warn!(error = %e, "a user's spend could not be counted");
        }
    }

    /// Forgets spend before yesterday and users idle for a minute; a
    /// long-running door calls it on a schedule. Returns the rows pruned.
    pub async fn prune(&self) -> Result<u64> {
        if let Some((_, limiter)) = &self.rpm {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        match &self.usage {
            Some(usage) => {
                usage
                    .prune_before(&day(Utc::now() - chrono::Duration::days(1)))
                    .await
            }
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_day_ends_at_midnight_utc() {
        let t = DateTime::parse_from_rfc3339("2026-12-06T23:59:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(day(t), "2026-12-06");
        assert_eq!(until_tomorrow(t), Duration::from_secs(30));
    }

    #[tokio::test]
    async fn requests_beyond_the_minute_are_refused_with_the_wait() {
        let b = Budgets::new(2, 0, None).unwrap();
        b.admit("ann").await.unwrap();
        b.admit("ann").await.unwrap();
        let e = b.admit("ann").await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::RateLimited);
        assert!(e.retry_after().unwrap() >= Duration::from_secs(1));
        // Another user has their own allowance.
        b.admit("bob").await.unwrap();
        assert!(!Budgets::unlimited().is_limited());
    }
}
