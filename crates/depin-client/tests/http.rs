//! The client's error mapping against a scripted server: the server's code and
//! message survive, 4xx is final, 5xx / unreachable / time-out are retryable.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use depin_client::{Client, ClientError};
use std::time::Duration;

async fn serve() -> String {
    let app = Router::new()
        .route(
            "/v1/policy",
            get(|| async { (StatusCode::OK, "<html>captive portal</html>") }),
        )
        .route(
            "/v1/balances/{a}",
            get(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"bad_request","message":"not an account"}"#,
                )
            }),
        )
        .route(
            "/v1/epochs",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "overloaded") }),
        )
        .route(
            "/healthz",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "ok"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn errors_keep_the_server_code_and_say_whether_to_retry() {
    let url = serve().await;
    let c = Client::with_timeout(&url, Duration::from_millis(300)).unwrap();

    let e = c.balance("nonsense").await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Rejected { status: 400, code, message } if code == "bad_request" && message == "not an account")
    );
    assert!(!e.is_retryable());

    let e = c.epochs().await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Server { status: 503, .. }),
        "{e:?}"
    );
    assert!(e.is_retryable());

    let e = c.policy().await.unwrap_err();
    assert!(matches!(e, ClientError::Decode { .. }), "{e:?}");

    let e = c.healthz().await.unwrap_err();
    assert!(matches!(e, ClientError::Timeout { .. }), "{e:?}");
    assert!(e.is_retryable());

    // Nothing listens on port 1.
    let e = Client::new("http://127.0.0.1:1")
        .unwrap()
        .healthz()
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Unreachable { .. }), "{e:?}");
    assert!(e.is_retryable());
    assert!(
        e.to_string().contains("cannot reach the coordinator"),
        "{e}"
    );
}
