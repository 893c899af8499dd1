//! Devices and their keys: registration, rotation, revocation. A key is a
//! device key or an operator key, never both (the `key_roles` table).

use crate::{
    Result, Store, StoreError, Val, WriteTx, insert_many, key_from_row, to_i64, u64_from_row,
};
use depin_core::PublicKey;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device: PublicKey,
    pub operator: PublicKey,
    pub sector: u32,
    pub hardware_class: String,
    pub firmware_version: String,
    pub lat_micro: Option<i64>,
    pub lon_micro: Option<i64>,
    pub h3_cell: Option<i64>,
    pub certificate: Vec<u8>,
    pub registered_ms: i64,
    pub revoked_ms: Option<i64>,
    pub replaced_by: Option<PublicKey>,
    pub last_seq: Option<u64>,
}

pub(crate) const DEVICE_COLUMNS: &str = "device, operator, sector, hardware_class, firmware_version, lat_micro, lon_micro, h3_cell, certificate, registered_ms, revoked_ms, replaced_by, last_seq";

async fn insert_device(conn: &mut sqlx::AnyConnection, d: &DeviceRow) -> Result<bool> {
    let n = insert_many(
        conn,
        &format!("INSERT INTO devices ({DEVICE_COLUMNS})"),
        "ON CONFLICT (device) DO NOTHING",
        13,
        &[vec![
            (&d.device).into(),
            (&d.operator).into(),
            d.sector.into(),
            d.hardware_class.as_str().into(),
            d.firmware_version.as_str().into(),
            d.lat_micro.into(),
            d.lon_micro.into(),
            d.h3_cell.into(),
            d.certificate.clone().into(),
            d.registered_ms.into(),
            d.revoked_ms.into(),
            d.replaced_by.as_ref().map_or(Val::NullBlob, |k| k.into()),
            d.last_seq.map(to_i64).transpose()?.into(),
        ]],
    )
    .await?;
    Ok(n == 1)
}

/// The outcome of registering a device key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    Registered,
    /// The device key is already a registered device.
    DeviceKeyTaken,
    /// The device key is some operator's key.
    DeviceKeyIsOperator,
    /// The operator key is some device's key.
    OperatorKeyIsDevice,
    /// (rotation) the old key is revoked or not registered.
    OldKeyInactive,
}

const ROLE_DEVICE: i64 = 1;
const ROLE_OPERATOR: i64 = 2;

/// Claims the device key and the operator key in the key table, then inserts
/// the device; the caller commits only on `Registered`.
async fn register_in(tx: &mut WriteTx, d: &DeviceRow) -> Result<Registration> {
    let claimed = sqlx::query(
        "INSERT INTO key_roles (key, role) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING RETURNING key",
    )
    .bind(d.device.0.to_vec())
    .bind(ROLE_DEVICE)
    .fetch_optional(tx.conn())
    .await?;
    if claimed.is_none() {
        return Ok(if role_of(tx.conn(), &d.device).await? == ROLE_OPERATOR {
            Registration::DeviceKeyIsOperator
        } else {
            Registration::DeviceKeyTaken
        });
    }
    sqlx::query("INSERT INTO key_roles (key, role) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
        .bind(d.operator.0.to_vec())
        .bind(ROLE_OPERATOR)
        .execute(tx.conn())
        .await?;
    if role_of(tx.conn(), &d.operator).await? != ROLE_OPERATOR {
        return Ok(Registration::OperatorKeyIsDevice);
    }
    if !insert_device(tx.conn(), d).await? {
        return Err(StoreError::Corrupt(format!(
            "device {} is in the devices table but not in key_roles",
            d.device
        )));
    }
    Ok(Registration::Registered)
}

/// The role a claimed key holds (the key must be in `key_roles`).
async fn role_of(conn: &mut AnyConnection, key: &PublicKey) -> Result<i64> {
    Ok(sqlx::query("SELECT role FROM key_roles WHERE key = $1")
        .bind(key.0.to_vec())
        .fetch_one(conn)
        .await?
        .try_get(0)?)
}

/// Marks `device` revoked at `at_ms`, naming its successor for a rotation.
/// False when it was already revoked or does not exist.
async fn revoke_in(
    conn: &mut AnyConnection,
    device: &PublicKey,
    at_ms: i64,
    replaced_by: Option<&PublicKey>,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE devices SET revoked_ms = $1, replaced_by = $2 WHERE device = $3 AND revoked_ms IS NULL",
    )
    .bind(at_ms)
    .bind(replaced_by.map(|k| k.0.to_vec()))
    .bind(device.0.to_vec())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

pub(crate) fn device_from_row(r: &AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        device: key_from_row(r.try_get(0)?)?,
        operator: key_from_row(r.try_get(1)?)?,
        sector: u32::try_from(r.try_get::<i64, _>(2)?)
            .map_err(|_| StoreError::Corrupt("sector".into()))?,
        hardware_class: r.try_get(3)?,
        firmware_version: r.try_get(4)?,
        lat_micro: r.try_get(5)?,
        lon_micro: r.try_get(6)?,
        h3_cell: r.try_get(7)?,
        certificate: r.try_get(8)?,
        registered_ms: r.try_get(9)?,
        revoked_ms: r.try_get(10)?,
        replaced_by: r
            .try_get::<Option<Vec<u8>>, _>(11)?
            .map(key_from_row)
            .transpose()?,
        last_seq: r
            .try_get::<Option<i64>, _>(12)?
            .map(|v| u64_from_row(v, "seq"))
            .transpose()?,
    })
}

impl Store {
    /// Registers a device, recording both keys' roles: a key is a device key
    /// or an operator key, never both, or a stolen device could move funds
    /// and an operator key could sign heartbeats. The unique key table makes
    /// that hold across replicas racing on the same keys.
    pub async fn insert_device(&self, d: &DeviceRow) -> Result<Registration> {
        crate::retrying!(self.insert_device_once(d))
    }

    async fn insert_device_once(&self, d: &DeviceRow) -> Result<Registration> {
        let mut tx = self.write_tx().await?;
        let r = register_in(&mut tx, d).await?;
        if r == Registration::Registered {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(r)
    }

    /// Registers `new` and revokes `old` in one transaction: either both
    /// happen or neither, so a crash can never leave the old key active beside
    /// its successor. Changes nothing unless the answer is `Registered`;
    /// `OldKeyInactive` when `old` is revoked or unknown.
    pub async fn rotate_device(
        &self,
        old: &PublicKey,
        new: &DeviceRow,
        at_ms: i64,
    ) -> Result<Registration> {
        crate::retrying!(self.rotate_device_once(old, new, at_ms))
    }

    async fn rotate_device_once(
        &self,
        old: &PublicKey,
        new: &DeviceRow,
        at_ms: i64,
    ) -> Result<Registration> {
        {
            let mut tx = self.write_tx().await?;
            let r = register_in(&mut tx, new).await?;
            if r != Registration::Registered {
                tx.rollback().await?;
                return Ok(r);
            }
            if !revoke_in(tx.conn(), old, at_ms, Some(&new.device)).await? {
                tx.rollback().await?;
                return Ok(Registration::OldKeyInactive);
            }
            tx.commit().await?;
            Ok(Registration::Registered)
        }
    }

    pub async fn device(&self, device: &PublicKey) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE device = $1"
        ))
        .bind(device.0.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from_row).transpose()
    }

    /// All devices, or one operator's, ordered by device key.
    pub async fn devices(&self, operator: Option<&PublicKey>) -> Result<Vec<DeviceRow>> {
        let rows = match operator {
            Some(op) => {
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE operator = $1 ORDER BY device"
                ))
                .bind(op.0.to_vec())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY device"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(device_from_row).collect()
    }

    /// Marks a device revoked at `at_ms` (and, for a rotation, its successor).
    /// Returns false if it was already revoked or does not exist.
    pub async fn revoke_device(
        &self,
        device: &PublicKey,
        at_ms: i64,
        replaced_by: Option<&PublicKey>,
    ) -> Result<bool> {
        crate::retrying!(self.revoke_device_once(device, at_ms, replaced_by))
    }

    async fn revoke_device_once(
        &self,
        device: &PublicKey,
        at_ms: i64,
        replaced_by: Option<&PublicKey>,
    ) -> Result<bool> {
        {
            let mut tx = self.write_tx().await?;
            let revoked = revoke_in(tx.conn(), device, at_ms, replaced_by).await?;
            tx.commit().await?;
            Ok(revoked)
        }
    }

    /// When the first device was registered: no epoch before it has anything to close.
    pub async fn first_registration_ms(&self) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT MIN(registered_ms) FROM devices")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }
}
