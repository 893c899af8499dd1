//! `GET /v1/work`: a device pulls the work orders open for it. The request
//! is a `WorkRequest` envelope signed by the device key, so nobody else can
//! list a device's challenges in advance (a storage audit known early is an
//! audit a cheater can prepare for).

use crate::{CoordError, Coordinator};
use depin_core::{PublicKey, Reason, UnixMillis};
use depin_protocol::{PayloadKind, WorkRequest};
use depin_store::WorkRow;

impl Coordinator {
    /// The work orders open for the device that signed `bytes` at `now_ms`:
    /// unanswered, deadline not passed, soonest deadline first. The signer
    /// must be a registered, unrevoked device; the request's timestamp must be
    /// within the clock skew the policy allows. A request is read-only: the
    /// same one seen twice within the skew window returns the same orders to
    /// whoever holds it, which is what the device already saw. Returns the
    /// verified signer with its orders.
    pub async fn open_work(
        &self,
        now_ms: UnixMillis,
        bytes: &[u8],
    ) -> Result<(PublicKey, Vec<WorkRow>), CoordError> {
        let signed = self.signed_message(now_ms, bytes, PayloadKind::WorkRequest)?;
        let _: WorkRequest = signed
            .envelope
            .decode_payload()
            .map_err(CoordError::rejected)?;
        let device = signed.envelope.signer;
        let row = self
            .store
            .device(&device)
            .await?
            .ok_or_else(|| CoordError::Rejected {
                reason: Reason::UnknownSigner,
                message: format!("{device} is not a registered device key"),
            })?;
        if row.revoked_ms.is_some() {
            return Err(CoordError::Rejected {
                reason: Reason::RevokedDevice,
                message: format!("device key {device} is revoked"),
            });
        }
        Ok((device, self.store.open_work(&device, now_ms).await?))
    }
}
