//! Queries for the live operator view (`/v1/operators/{operator}/…`): signed
//! cost settings, energy integrated from heartbeats, firmware versions per
//! hardware class and recent earnings per device for sector medians.
//!
//! Tables are in migration `0002_operator` (`operator_settings` as rebuilt by
//! `0008_settings_envelope`). Nothing here decides anything; the rules (cost
//! accounting, alert thresholds) are in `depin_economics::operator`.

use crate::{Result, Store, key_from_row, to_i64, u64_from_row};
use depin_core::{EpochIndex, PublicKey};
use sqlx::Row;

/// An operator's cost settings as received: the raw signed envelope (kind 7,
/// `operator_settings`) exactly as it arrived, the settings document it
/// carries (UTF-8 JSON, kept beside it so readers need not decode the
/// envelope) and the envelope's timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSettingsRow {
    pub operator: PublicKey,
    pub body: String,
    pub envelope: Vec<u8>,
    pub signed_ms: i64,
    pub updated_ms: i64,
}

/// What storing settings did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsWrite {
    Stored,
    /// Settings signed at or after this timestamp are already stored (a
    /// replay or a stale update); nothing changed.
    Stale,
    /// The key is a device key: a key is a device key or an operator key,
    /// never both. Nothing changed.
    DeviceKey,
}

/// Roles in `key_roles`, the same codes `rows.rs` registers devices with.
const ROLE_OPERATOR: i64 = 2;

/// Energy drawn by a device, integrated over its heartbeats up to `last_seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEnergyRow {
    pub device: PublicKey,
    pub last_seq: u64,
    /// Latest heartbeat timestamp integrated so far.
    pub last_ms: i64,
    /// Milliwatt-milliseconds (= microjoules).
    pub energy_uj: u64,
    /// Time the integrated heartbeats cover, in ms.
    pub covered_ms: u64,
    pub heartbeats: u64,
}

/// A device's earnings (reward + net fees) over a window of closed epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEarningsRow {
    pub device: PublicKey,
    pub sector: u32,
    pub earned: u64,
    /// Reward lines in the window (epochs in which the device was on the sheet).
    pub lines: u64,
}

impl Store {
    /// Stores `row` unless the operator already has settings signed at or
    /// after `row.signed_ms` ([`SettingsWrite::Stale`]) or the key is a device
    /// key ([`SettingsWrite::DeviceKey`]). Storing claims the key as an
    /// operator key in `key_roles`, in the same transaction, so it can never
    /// be registered as a device afterwards, on any replica.
    pub async fn put_operator_settings(&self, row: &OperatorSettingsRow) -> Result<SettingsWrite> {
        crate::retrying!(self.put_operator_settings_once(row))
    }

    async fn put_operator_settings_once(&self, row: &OperatorSettingsRow) -> Result<SettingsWrite> {
        let mut tx = self.write_tx().await?;
        let key = row.operator.0.to_vec();
        sqlx::query(
            "INSERT INTO key_roles (key, role) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key.clone())
        .bind(ROLE_OPERATOR)
        .execute(tx.conn())
        .await?;
        let role: i64 = sqlx::query("SELECT role FROM key_roles WHERE key = $1")
            .bind(key.clone())
            .fetch_one(tx.conn())
            .await?
            .try_get(0)?;
        if role != ROLE_OPERATOR {
            tx.rollback().await?;
            return Ok(SettingsWrite::DeviceKey);
        }
        let n = sqlx::query(
            "INSERT INTO operator_settings (operator, body, envelope, signed_ms, updated_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (operator) DO UPDATE SET body = excluded.body, envelope = excluded.envelope, \
             signed_ms = excluded.signed_ms, updated_ms = excluded.updated_ms \
             WHERE operator_settings.signed_ms < excluded.signed_ms",
        )
        .bind(key)
        .bind(row.body.clone())
        .bind(row.envelope.clone())
        .bind(row.signed_ms)
        .bind(row.updated_ms)
        .execute(tx.conn())
        .await?
        .rows_affected();
        if n == 1 {
            tx.commit().await?;
            Ok(SettingsWrite::Stored)
        } else {
            tx.rollback().await?;
            Ok(SettingsWrite::Stale)
        }
    }

    pub async fn operator_settings(
        &self,
        operator: &PublicKey,
    ) -> Result<Option<OperatorSettingsRow>> {
        let r = sqlx::query("SELECT operator, body, envelope, signed_ms, updated_ms FROM operator_settings WHERE operator = $1")
            .bind(operator.0.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| {
            Ok(OperatorSettingsRow {
                operator: key_from_row(r.try_get(0)?)?,
                body: r.try_get(1)?,
                envelope: r.try_get(2)?,
                signed_ms: r.try_get(3)?,
                updated_ms: r.try_get(4)?,
            })
        })
        .transpose()
    }

    pub async fn device_energy(&self, device: &PublicKey) -> Result<Option<DeviceEnergyRow>> {
        let r = sqlx::query("SELECT device, last_seq, last_ms, energy_uj, covered_ms, heartbeats FROM device_energy WHERE device = $1")
            .bind(device.0.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        r.map(|r| {
            Ok(DeviceEnergyRow {
                device: key_from_row(r.try_get(0)?)?,
                last_seq: u64_from_row(r.try_get(1)?, "seq")?,
                last_ms: r.try_get(2)?,
                energy_uj: u64_from_row(r.try_get(3)?, "energy")?,
                covered_ms: u64_from_row(r.try_get(4)?, "covered_ms")?,
                heartbeats: u64_from_row(r.try_get(5)?, "heartbeats")?,
            })
        })
        .transpose()
    }

    /// Up to `limit` device keys after `after` (all when `None`), in key
    /// order: a page of the registry for background passes over every device.
    pub async fn device_keys_after(
        &self,
        after: Option<&PublicKey>,
        limit: u32,
    ) -> Result<Vec<PublicKey>> {
        let rows =
            sqlx::query("SELECT device FROM devices WHERE device > $1 ORDER BY device LIMIT $2")
                .bind(after.map_or_else(Vec::new, |k| k.0.to_vec()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| crate::key_from_row(r.try_get(0)?))
            .collect()
    }

    /// Saves an energy cursor. Two readers integrating at once both compute
    /// correct totals from the log; the one that got further wins, so the cursor
    /// never moves back. Returns whether the row was written.
    pub async fn put_device_energy(&self, row: &DeviceEnergyRow) -> Result<bool> {
        let n = self.execute_write(sqlx::query(
            "INSERT INTO device_energy (device, last_seq, last_ms, energy_uj, covered_ms, heartbeats) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (device) DO UPDATE SET last_seq = excluded.last_seq, last_ms = excluded.last_ms, \
             energy_uj = excluded.energy_uj, covered_ms = excluded.covered_ms, heartbeats = excluded.heartbeats \
             WHERE device_energy.last_seq < excluded.last_seq",
        )
        .bind(row.device.0.to_vec())
        .bind(to_i64(row.last_seq)?)
        .bind(row.last_ms)
        .bind(to_i64(row.energy_uj)?)
        .bind(to_i64(row.covered_ms)?)
        .bind(to_i64(row.heartbeats)?)
        )
        .await?;
        Ok(n == 1)
    }

    /// Up to `limit` stored reports of `kind` from `device` with a sequence
    /// number above `after_seq`, in sequence order.
    pub async fn reports_after(
        &self,
        device: &PublicKey,
        kind: u32,
        after_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<crate::ReportRow>> {
        let after = after_seq.map_or(Ok(-1), to_i64)?;
        let rows = sqlx::query(
            "SELECT device, seq, epoch, kind, timestamp_ms, received_ms, raw FROM reports WHERE device = $1 AND kind = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(device.0.to_vec())
        .bind(i64::from(kind))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::reports::report_from_row).collect()
    }

    /// How many reports of `kind` the device sent with a timestamp in
    /// `(from_ms, to_ms]`.
    pub async fn report_count_between(
        &self,
        device: &PublicKey,
        kind: u32,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM reports WHERE device = $1 AND kind = $2 AND timestamp_ms > $3 AND timestamp_ms <= $4")
            .bind(device.0.to_vec())
            .bind(i64::from(kind))
            .bind(from_ms)
            .bind(to_ms)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        u64_from_row(n, "count")
    }

    /// Every firmware version registered or reported by a non-revoked device of
    /// `hardware_class` (unordered, distinct).
    pub async fn firmware_versions(&self, hardware_class: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT firmware_version FROM devices WHERE hardware_class = $1 AND revoked_ms IS NULL \
             UNION SELECT t.firmware_version FROM telemetry t JOIN devices d ON d.device = t.device \
             WHERE d.hardware_class = $1 AND d.revoked_ms IS NULL",
        )
        .bind(hardware_class)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>(0)?))
            .collect()
    }

    /// The published newest firmware of a hardware class, if one is configured.
    pub async fn published_firmware(&self, hardware_class: &str) -> Result<Option<String>> {
        let r = sqlx::query("SELECT version FROM firmware_releases WHERE hardware_class = $1")
            .bind(hardware_class)
            .fetch_optional(&self.pool)
            .await?;
        Ok(r.map(|r| r.get::<String, _>(0)))
    }

    /// Configures the newest published firmware of a hardware class (replaces).
    pub async fn publish_firmware(
        &self,
        hardware_class: &str,
        version: &str,
        published_ms: i64,
    ) -> Result<()> {
        self.execute_write(sqlx::query(
            "INSERT INTO firmware_releases (hardware_class, version, published_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (hardware_class) DO UPDATE SET version = excluded.version, published_ms = excluded.published_ms",
        )
        .bind(hardware_class)
        .bind(version)
        .bind(published_ms)
        )
        .await?;
        Ok(())
    }

    /// Earnings per device over the closed epochs `first..`, for sector medians.
    pub async fn device_earnings_since(&self, first: EpochIndex) -> Result<Vec<DeviceEarningsRow>> {
        let rows = sqlx::query(
            "SELECT device, sector, CAST(SUM(reward + fees) AS BIGINT), COUNT(*) FROM reward_lines WHERE epoch >= $1 \
             GROUP BY device, sector ORDER BY device",
        )
        .bind(to_i64(first)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeviceEarningsRow {
                    device: key_from_row(r.try_get(0)?)?,
                    sector: r.try_get::<i64, _>(1)? as u32,
                    earned: u64_from_row(r.try_get(2)?, "earned")?,
                    lines: u64_from_row(r.try_get(3)?, "lines")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceRow, Registration};

    fn key(b: u8) -> PublicKey {
        PublicKey([b; 32])
    }

    /// Both cases, on SQLite and on a real PostgreSQL server.
    #[tokio::test]
    async fn operator_queries_on_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        settings_replace_only_with_newer_signature(
            Store::open_in_dir(&dir.path().join("a")).await.unwrap(),
        )
        .await;
        energy_cursor_never_moves_back_and_firmware_is_published(
            Store::open_in_dir(&dir.path().join("b")).await.unwrap(),
        )
        .await;
        let Some(pg) = crate::testing::TestPostgres::start() else {
            return;
        };
        settings_replace_only_with_newer_signature(
            Store::open(&pg.url("op_settings")).await.unwrap(),
        )
        .await;
        energy_cursor_never_moves_back_and_firmware_is_published(
            Store::open(&pg.url("op_energy")).await.unwrap(),
        )
        .await;
    }

    async fn settings_replace_only_with_newer_signature(store: Store) {
        let row = |signed_ms, body: &str| OperatorSettingsRow {
            operator: key(1),
            body: body.into(),
            // Any bytes: the store keeps the envelope as given, checks nothing.
            envelope: [&[0x0a, 0x00][..], body.as_bytes(), &[0xff; 3]].concat(),
            signed_ms,
            updated_ms: 5,
        };
        let stored = |store: &Store| {
            let store = store.clone();
            async move { store.operator_settings(&key(1)).await.unwrap().unwrap() }
        };
        assert!(store.operator_settings(&key(1)).await.unwrap().is_none());
        let first = row(10, "{\"a\":1}");
        assert_eq!(
            store.put_operator_settings(&first).await.unwrap(),
            SettingsWrite::Stored
        );
        assert_eq!(stored(&store).await, first, "kept byte for byte");
        for (stale, why) in [
            (row(10, "{\"a\":2}"), "same timestamp is a replay"),
            (row(9, "{\"a\":3}"), "older is stale"),
        ] {
            assert_eq!(
                store.put_operator_settings(&stale).await.unwrap(),
                SettingsWrite::Stale,
                "{why}"
            );
        }
        assert_eq!(stored(&store).await, first);
        let newer = row(11, "{\"a\":4}");
        assert_eq!(
            store.put_operator_settings(&newer).await.unwrap(),
            SettingsWrite::Stored
        );
        assert_eq!(stored(&store).await, newer);

        // A device key cannot store settings; an operator key that stored
        // settings cannot become a device.
        let device = DeviceRow {
            device: key(3),
            operator: key(4),
            sector: 1,
            hardware_class: "hotspot".into(),
            firmware_version: "1.0.0".into(),
            lat_micro: None,
            lon_micro: None,
            h3_cell: None,
            certificate: vec![1],
            registered_ms: 1,
            revoked_ms: None,
            replaced_by: None,
            last_seq: None,
        };
        assert_eq!(
            store.insert_device(&device).await.unwrap(),
            Registration::Registered
        );
        let by_device = OperatorSettingsRow {
            operator: key(3),
            ..row(12, "{}")
        };
        assert_eq!(
            store.put_operator_settings(&by_device).await.unwrap(),
            SettingsWrite::DeviceKey
        );
        assert!(store.operator_settings(&key(3)).await.unwrap().is_none());
        let as_device = DeviceRow {
            device: key(1),
            ..device.clone()
        };
        assert_eq!(
            store.insert_device(&as_device).await.unwrap(),
            Registration::DeviceKeyIsOperator
        );
        // The owner of a registered device stores settings like anyone.
        let by_owner = OperatorSettingsRow {
            operator: key(4),
            ..row(12, "{}")
        };
        assert_eq!(
            store.put_operator_settings(&by_owner).await.unwrap(),
            SettingsWrite::Stored
        );
        store.close().await;
    }

    async fn energy_cursor_never_moves_back_and_firmware_is_published(store: Store) {
        let e = |last_seq, energy_uj| DeviceEnergyRow {
            device: key(2),
            last_seq,
            last_ms: 1,
            energy_uj,
            covered_ms: 3,
            heartbeats: 4,
        };
        assert!(store.put_device_energy(&e(5, 100)).await.unwrap());
        assert!(!store.put_device_energy(&e(4, 90)).await.unwrap());
        assert!(store.put_device_energy(&e(6, 120)).await.unwrap());
        assert_eq!(
            store.device_energy(&key(2)).await.unwrap().unwrap(),
            e(6, 120)
        );
        assert_eq!(store.published_firmware("x").await.unwrap(), None);
        store.publish_firmware("x", "1.2.3", 1).await.unwrap();
        store.publish_firmware("x", "1.3.0", 2).await.unwrap();
        assert_eq!(
            store.published_firmware("x").await.unwrap().as_deref(),
            Some("1.3.0")
        );
        assert!(store.firmware_versions("x").await.unwrap().is_empty());
        assert!(store.device_earnings_since(0).await.unwrap().is_empty());
        assert!(
            store
                .reports_after(&key(2), 2, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.report_count_between(&key(2), 2, 0, 10).await.unwrap(),
            0
        );
        store.close().await;
    }
}
