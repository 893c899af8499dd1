//! Consumers: `POST /v1/orders` locks escrow for an order (the body is an
//! `OrderLock` envelope signed by the consumer key), `GET
//! /v1/consumers/{consumer}` shows the free escrow and the orders with what
//! was charged. Deposits are not an endpoint: whoever runs the coordinator
//! credits them from an external payment reference (`depin escrow deposit`).

use crate::routes::{ApiPath, Endpoint, RawBody, check_budget, client_ip, parse_key};
use crate::{ApiError, AppState, now_ms};
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use depin_coordinator::{ConsumerView, LockedOrder};
use std::net::SocketAddr;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type AppResult<T> = Result<T, ApiError>;

pub fn endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint::new(
            "post",
            "/v1/orders",
            "Lock escrow for an order: body is an OrderLock envelope signed by the consumer key. 201 when locked now, 200 when the same lock was recorded before; insufficient_escrow (402), order_conflict (409), order_too_late.",
            post(lock_order),
        ),
        Endpoint::new(
            "get",
            "/v1/consumers/{consumer}",
            "A consumer's free escrow and orders, with what each was charged.",
            get(consumer),
        ),
    ]
}

async fn lock_order(
    State(st): St,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<(StatusCode, Json<LockedOrder>)> {
    let client = client_ip(&st, peer, &headers);
    check_budget(&st, client)?;
    match st.coordinator.lock_order(now_ms(), &body).await {
        Ok(locked) => {
            let status = if locked.new {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((status, Json(locked)))
        }
        Err(e) => {
            // A refused lock still cost a signature check and a transaction.
            st.budget.charge(client, 1);
            Err(e.into())
        }
    }
}

async fn consumer(
    State(st): St,
    ApiPath(consumer): ApiPath<String>,
) -> AppResult<Json<ConsumerView>> {
    let key = parse_key(&consumer, "consumer")?;
    Ok(Json(st.coordinator.consumer(&key).await?))
}
