//! Reward policies by id, stored verbatim so any closed epoch can be recomputed.

use crate::{Result, Store};
use sqlx::Row;

impl Store {
    pub async fn put_policy(&self, policy_id: &str, body: &[u8]) -> Result<()> {
        self.execute_write(
            sqlx::query("INSERT INTO policies (policy_id, body) VALUES ($1, $2) ON CONFLICT (policy_id) DO NOTHING")
                .bind(policy_id)
                .bind(body.to_vec()),
        )
        .await?;
        Ok(())
    }

    pub async fn policy(&self, policy_id: &str) -> Result<Option<Vec<u8>>> {
        let r = sqlx::query("SELECT body FROM policies WHERE policy_id = $1")
            .bind(policy_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<Vec<u8>, _>(0)))
    }
}
