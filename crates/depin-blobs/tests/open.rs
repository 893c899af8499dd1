//! Opening stores: specs, options and backend failures, through the public API.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, Kind, creds};
use depin_blobs::{BlobError, BlobId, BlobStore, OpenOptions, S3Credentials};
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

async fn open_err(spec: &str) -> BlobError {
    match BlobStore::open(spec).await {
        Ok(s) => panic!("{spec:?} opened as {s}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn local_dir_is_created_and_file_url_names_it_too() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("a/b/blobs");
    let store = BlobStore::open(root.to_str().unwrap()).await.unwrap();
    assert!(root.is_dir());
    let canonical = std::fs::canonicalize(&root).unwrap();
    assert_eq!(store.to_string(), format!("file://{}", canonical.display()));
    let id = store.put(&b"hello"[..]).await.unwrap();

    let url = format!("file://{}", canonical.display());
    let again = BlobStore::open(&url).await.unwrap();
    assert_eq!(&again.get(&id).await.unwrap()[..], b"hello");
}

#[tokio::test]
async fn a_file_is_not_a_store_directory() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("plain-file");
    std::fs::write(&f, b"x").unwrap();
    let err = open_err(f.to_str().unwrap()).await;
    assert_eq!(err.code(), "spec_invalid_path", "{err:?}");
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[tokio::test]
async fn bad_specs_name_the_problem() {
    let cases = [
        ("", "spec_empty", "empty"),
        ("gs://bucket/x", "spec_unknown_scheme", "\"gs\""),
        ("file://relative/dir", "spec_relative_file_url", "absolute"),
        ("file:relative", "spec_relative_file_url", "absolute"),
        ("s3://", "spec_missing_bucket", "no bucket"),
        ("s3://Upper", "spec_invalid_bucket", "Upper"),
        ("s3://bkt?colour=red", "spec_unknown_option", "colour"),
        (
            "s3://bkt?endpoint=http://127.0.0.1:9",
            "spec_invalid_option",
            "allow_http",
        ),
        (
            "s3://AKIA:shh@bkt",
            "spec_secret_in_url",
            "AWS_ACCESS_KEY_ID",
        ),
        ("/tmp/x?region=a", "spec_options_not_supported", ""),
    ];
    for (spec, code, mentions) in cases {
        // `/tmp/x?region=a` is a legal directory name; only file: URLs
        // carry a query. Check that one via its URL form.
        let spec = if spec.starts_with('/') {
            "file:///tmp/x?region=a"
        } else {
            spec
        };
        let err = open_err(spec).await;
        assert_eq!(err.code(), code, "{spec:?}: {err}");
        assert!(err.is_spec_error(), "{spec:?}");
        assert!(err.to_string().contains(mentions), "{spec:?}: {err}");
    }
}

#[tokio::test]
async fn bad_options_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().to_str().unwrap().to_string();
    let s3 = "s3://bkt?endpoint=http://127.0.0.1:9&allow_http=true";
    let cases: Vec<(&str, OpenOptions)> = vec![
        (&local, OpenOptions::new().with_max_blob_size(0)),
        (&local, OpenOptions::new().with_part_size(100)),
        (&local, OpenOptions::new().with_upload_concurrency(0)),
        (s3, OpenOptions::new().with_part_size(1024 * 1024)),
        (
            s3,
            OpenOptions::new().with_s3_credentials(S3Credentials {
                access_key_id: String::new(),
                secret_access_key: "x".into(),
                session_token: None,
            }),
        ),
    ];
    for (spec, opts) in cases {
        let err = BlobStore::open_with(spec, opts.clone()).await.unwrap_err();
        assert_eq!(err.code(), "config_invalid", "{opts:?}: {err}");
    }
}

#[test]
fn credentials_never_print_their_secret() {
    let c = S3Credentials {
        session_token: Some("tok-secret".into()),
        ..creds()
    };
    let shown = format!(
        "{c:?} {:?}",
        OpenOptions::new().with_s3_credentials(c.clone())
    );
    assert!(!shown.contains(&c.secret_access_key), "{shown}");
    assert!(!shown.contains("tok-secret"), "{shown}");
    assert!(shown.contains(&c.access_key_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_secret_is_denied() {
    let b = Backend::new(Kind::S3).await;
    let wrong = b
        .reopen(
            OpenOptions::new()
                .with_retry(0, Duration::from_secs(5))
                .with_s3_credentials(S3Credentials {
                    secret_access_key: "not-the-secret".into(),
                    ..creds()
                }),
        )
        .await;
    let err = wrong.put(&b"x"[..]).await.unwrap_err();
    assert_eq!(err.code(), "backend_denied", "{err}");
    let err = wrong.get(&BlobId::of(b"x")).await.unwrap_err();
    assert_eq!(err.code(), "backend_denied", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_gone_fails_fast_with_bounded_retries() {
    // Bind then drop: a loopback port with (almost certainly) nobody on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spec = format!("s3://bkt?endpoint=http://127.0.0.1:{port}&allow_http=true");
    let store = BlobStore::open_with(
        &spec,
        OpenOptions::new()
            .with_retry(1, Duration::from_secs(3))
            .with_s3_credentials(creds()),
    )
    .await
    .unwrap();
    let t = Instant::now();
    let err = store.put(&b"x"[..]).await.unwrap_err();
    assert_eq!(err.code(), "backend", "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}

#[tokio::test]
async fn any_object_store_with_a_prefix() {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let store = BlobStore::from_object_store(mem.clone(), "tenant-9", OpenOptions::new()).unwrap();
    let id = store.put(&b"module.wasm"[..]).await.unwrap();
    assert!(store.key_of(&id).starts_with("tenant-9/blake3/"));
    assert_eq!(&store.get(&id).await.unwrap()[..], b"module.wasm");
    // Tamper with the object behind the store's back.
    let key = ObjPath::parse(store.key_of(&id)).unwrap();
    mem.put(&key, b"evil.wasm!!".to_vec().into()).await.unwrap();
    assert!(matches!(
        store.get(&id).await,
        Err(BlobError::Corrupt { .. })
    ));
    let err = BlobStore::from_object_store(mem, "a//b", OpenOptions::new()).unwrap_err();
    assert_eq!(err.code(), "spec_invalid_prefix");
}
