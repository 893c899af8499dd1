//! The same behavioural suite against both real backends: a local directory
//! and an in-process S3 server (s3s-fs) on loopback.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Backend, Kind, flip_byte, pattern};
use depin_blobs::{BlobError, BlobId, S3_MIN_PART_SIZE};
use futures_util::TryStreamExt;

/// `name_local` and `name_s3` tests from one `async fn name(b: Backend)`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::new(super::Kind::Local).await).await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::new(super::Kind::S3).await).await;
                }
            )*
        }
    };
}

on_both!(
    round_trip,
    empty_blob,
    idempotent_put,
    concurrent_identical_puts,
    corrupt_bytes_are_refused,
    replaced_bytes_are_refused,
    size_limit,
    missing_blob,
    list_and_delete,
    list_pages_in_order,
    foreign_objects_are_not_listed,
    stream_small_and_large,
    stream_over_limit_leaves_nothing,
    stream_read_error_leaves_nothing,
    file_round_trip,
    get_to_file_never_leaves_bad_bytes,
    sweep_removes_only_stale_leftovers,
);

async fn round_trip(b: Backend) {
    let data = Bytes::from_static(b"sensor frame 0001");
    let id = b.store.put(data.clone()).await.unwrap();
    assert_eq!(id, BlobId::of(&data));
    assert_eq!(b.store.get(&id).await.unwrap(), data);
    let meta = b.store.head(&id).await.unwrap();
    assert_eq!((meta.id, meta.size), (id, data.len() as u64));
    assert!(b.store.exists(&id).await.unwrap());
    // The object sits at its documented content address.
    let hex = id.to_hex();
    let want = format!("blake3/{}/{hex}", &hex[..2]);
    assert!(
        b.store.key_of(&id).ends_with(&want),
        "{}",
        b.store.key_of(&id)
    );
    assert!(b.object_file(&id).is_file());
}

async fn empty_blob(b: Backend) {
    let id = b.store.put(Bytes::new()).await.unwrap();
    assert_eq!(id, BlobId::of(b""));
    assert!(b.store.get(&id).await.unwrap().is_empty());
    assert_eq!(b.store.head(&id).await.unwrap().size, 0);
    let via_stream = b.store.put_stream(&b""[..]).await.unwrap();
    assert_eq!(via_stream, id);
}

async fn idempotent_put(b: Backend) {
    let data = pattern(10_000, 1);
    let a = b.store.put(data.clone()).await.unwrap();
    let c = b.store.put(data.clone()).await.unwrap();
    let s = b.store.put_stream(&data[..]).await.unwrap();
    assert_eq!((a, a), (c, s));
    let all: Vec<_> = b.store.list().try_collect().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(b.store.get(&a).await.unwrap(), data);
}

async fn concurrent_identical_puts(b: Backend) {
    let data = Bytes::from(pattern(50_000, 2));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, d) = (b.store.clone(), data.clone());
            tokio::spawn(async move { s.put(d).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), BlobId::of(&data));
    }
    assert_eq!(b.store.get(&BlobId::of(&data)).await.unwrap(), data);
}

async fn corrupt_bytes_are_refused(b: Backend) {
    let data = pattern(4096, 3);
    let id = b.store.put(data.clone()).await.unwrap();
    flip_byte(&b.object_file(&id), 1000);
    let err = b.store.get(&id).await.unwrap_err();
    assert_eq!(err.code(), "blob_corrupt");
    match err {
        BlobError::Corrupt { id: got, actual } => {
            assert_eq!(got, id);
            assert_ne!(actual, id);
        }
        other => panic!("{other:?}"),
    }
    // head does not read the bytes, so it still answers.
    assert_eq!(b.store.head(&id).await.unwrap().size, 4096);
    // Putting the true bytes again repairs the object.
    b.store.put(data.clone()).await.unwrap();
    assert_eq!(b.store.get(&id).await.unwrap(), data);
}

async fn replaced_bytes_are_refused(b: Backend) {
    let id = b.store.put(&b"the real module"[..]).await.unwrap();
    std::fs::write(b.object_file(&id), b"a different module, longer").unwrap();
    let err = b.store.get(&id).await.unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err:?}");
    std::fs::write(b.object_file(&id), b"").unwrap();
    let err = b.store.get(&id).await.unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err:?}");
}

async fn size_limit(b: Backend) {
    let small = b.reopen(b.opts().with_max_blob_size(1024)).await;
    assert_eq!(small.max_blob_size(), 1024);
    let ok = pattern(1024, 4);
    let too_big = pattern(1025, 5);
    let id = small.put(ok.clone()).await.unwrap();
    let err = small.put(too_big.clone()).await.unwrap_err();
    assert_eq!(err.code(), "blob_too_large");
    assert!(
        matches!(
            err,
            BlobError::TooLarge {
                size: 1025,
                limit: 1024
            }
        ),
        "{err:?}"
    );
    let err = small.put_stream(&too_big[..]).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err:?}");
    let f = b.scratch().join("big.bin");
    std::fs::write(&f, &too_big).unwrap();
    let err = small.put_file(&f).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err:?}");
    // Nothing of the refused blob was written anywhere.
    let all: Vec<_> = b.store.list().try_collect().await.unwrap();
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), vec![id]);
    assert!(!b.object_file(&BlobId::of(&too_big)).exists());
    // A store with a lower limit refuses to serve an object above it.
    let big_id = b.store.put(too_big).await.unwrap();
    let err = small.get(&big_id).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err:?}");
}

async fn missing_blob(b: Backend) {
    let id = BlobId::of(b"never stored");
    let err = b.store.get(&id).await.unwrap_err();
    assert_eq!(err.code(), "blob_not_found");
    assert!(matches!(err, BlobError::NotFound { id: got } if got == id));
    assert!(matches!(
        b.store.head(&id).await,
        Err(BlobError::NotFound { .. })
    ));
    assert!(!b.store.exists(&id).await.unwrap());
    b.store.delete(&id).await.unwrap();
    let dest = b.scratch().join("out.bin");
    let err = b.store.get_to_file(&id, &dest).await.unwrap_err();
    assert!(matches!(err, BlobError::NotFound { .. }), "{err:?}");
    assert!(!dest.exists());
    // A store nothing was ever written to lists nothing.
    assert!(b.store.list_page(None, 10).await.unwrap().is_empty());
}

async fn list_and_delete(b: Backend) {
    let mut ids = Vec::new();
    for i in 0..5u64 {
        ids.push(
            b.store
                .put(pattern(100 + i as usize, i + 10))
                .await
                .unwrap(),
        );
    }
    let mut listed: Vec<_> = b.store.list().map_ok(|m| m.id).try_collect().await.unwrap();
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed, want);

    b.store.delete(&ids[0]).await.unwrap();
    assert!(!b.store.exists(&ids[0]).await.unwrap());
    b.store.delete(&ids[0]).await.unwrap(); // again: still fine
    let left: Vec<_> = b.store.list().try_collect().await.unwrap();
    assert_eq!(left.len(), 4);
    assert!(left.iter().all(|m| m.id != ids[0]));
    for m in &left {
        let data = b.store.get(&m.id).await.unwrap();
        assert_eq!(m.size, data.len() as u64);
    }
}

async fn list_pages_in_order(b: Backend) {
    let mut ids = Vec::new();
    for i in 0..7u64 {
        ids.push(b.store.put(pattern(10, i + 100)).await.unwrap());
    }
    ids.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = b.store.list_page(after.as_ref(), 3).await.unwrap();
        seen.extend(page.iter().map(|m| m.id));
        if page.len() < 3 {
            break;
        }
        after = page.last().map(|m| m.id);
    }
    assert_eq!(seen, ids);
    let rest: Vec<_> = b
        .store
        .list_after(&ids[4])
        .map_ok(|m| m.id)
        .try_collect()
        .await
        .unwrap();
    let mut rest = rest;
    rest.sort();
    assert_eq!(rest, ids[5..].to_vec());
    assert!(b.store.list_page(None, 0).await.unwrap().is_empty());
}

async fn foreign_objects_are_not_listed(b: Backend) {
    let id = b.store.put(&b"ours"[..]).await.unwrap();
    let hex = id.to_hex();
    for k in [
        "blake3/zz/not-a-hash".to_string(),
        format!("blake3/00/{hex}"), // right name, wrong fan-out
        "notes.txt".to_string(),
    ] {
        let p = b.raw_file(&k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"foreign").unwrap();
    }
    let all: Vec<_> = b.store.list().map_ok(|m| m.id).try_collect().await.unwrap();
    assert_eq!(all, vec![id]);
}

/// Part size for multipart tests: the S3 minimum (the server enforces the
/// protocol), a small one for the local directory so the test stays quick.
fn part_size(b: &Backend) -> usize {
    if b.is_s3() {
        S3_MIN_PART_SIZE
    } else {
        64 * 1024
    }
}

async fn stream_small_and_large(b: Backend) {
    let part = part_size(&b);
    let store = b.reopen(b.opts().with_part_size(part)).await;
    // Below one part: single put. Exactly one part, and 2.3 parts: multipart
    // via a temporary key, then published.
    for (len, seed) in [(part / 3, 20), (part, 21), (part * 2 + part / 3, 22)] {
        let data = pattern(len, seed);
        let id = store.put_stream(&data[..]).await.unwrap();
        assert_eq!(id, BlobId::of(&data), "len {len}");
        assert_eq!(store.get(&id).await.unwrap(), data, "len {len}");
        // Streaming the same bytes again takes the "already present" path.
        assert_eq!(store.put_stream(&data[..]).await.unwrap(), id);
    }
    // No temporary objects were left behind by any of that.
    assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(store.list().try_collect::<Vec<_>>().await.unwrap().len(), 3);
}

async fn stream_over_limit_leaves_nothing(b: Backend) {
    let part = part_size(&b);
    let store = b
        .reopen(
            b.opts()
                .with_part_size(part)
                .with_max_blob_size(part as u64 + part as u64 / 2),
        )
        .await;
    let data = pattern(part * 2, 30);
    let err = store.put_stream(&data[..]).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { .. }), "{err:?}");
    assert!(store.list_page(None, 10).await.unwrap().is_empty());
    assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 0);
}

async fn file_round_trip(b: Backend) {
    let part = part_size(&b);
    let store = b.reopen(b.opts().with_part_size(part)).await;
    let dir = b.scratch();
    for (len, seed) in [(1000, 40), (part * 2 + 17, 41)] {
        let src = dir.join(format!("in-{len}.bin"));
        let data = pattern(len, seed);
        std::fs::write(&src, &data).unwrap();
        let id = store.put_file(&src).await.unwrap();
        assert_eq!(id, BlobId::of(&data));
        // Again: skipped as already present, same id.
        assert_eq!(store.put_file(&src).await.unwrap(), id);
        let dest = dir.join(format!("out-{len}.bin"));
        assert_eq!(store.get_to_file(&id, &dest).await.unwrap(), len as u64);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
    }
    // Not a file: a clear I/O error, nothing stored.
    let err = store.put_file(&dir).await.unwrap_err();
    assert_eq!(err.code(), "io");
    let err = store.put_file(dir.join("absent")).await.unwrap_err();
    assert_eq!(err.code(), "io");
    assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 0);
}

async fn get_to_file_never_leaves_bad_bytes(b: Backend) {
    let data = pattern(5000, 50);
    let id = b.store.put(data.clone()).await.unwrap();
    flip_byte(&b.object_file(&id), 4999);
    let dir = b.scratch();
    let dest = dir.join("frame.bin");
    std::fs::write(&dest, b"previous content").unwrap();
    let err = b.store.get_to_file(&id, &dest).await.unwrap_err();
    assert!(matches!(err, BlobError::Corrupt { .. }), "{err:?}");
    // The destination is untouched and no temporary file is left beside it.
    assert_eq!(std::fs::read(&dest).unwrap(), b"previous content");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let fresh = dir.join("fresh.bin");
    assert!(b.store.get_to_file(&id, &fresh).await.is_err());
    assert!(!fresh.exists());
}

async fn sweep_removes_only_stale_leftovers(b: Backend) {
    let id = b.store.put(&b"keep me"[..]).await.unwrap();
    // What a crash mid-upload leaves: a temporary object of put_stream.
    let tmp = b.raw_file("tmp/0000000000000000000000000000abcd");
    std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
    std::fs::write(&tmp, b"half an upload").unwrap();
    let mut expected = 1;
    if !b.is_s3() {
        // And, locally, object_store's own staging file beside a blob.
        let staged = format!("{}#3", b.object_file(&id).display());
        std::fs::write(&staged, b"half a put").unwrap();
        expected += 1;
    }
    // Young leftovers may be uploads in progress: left alone.
    assert_eq!(
        b.store.sweep_temp(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert!(tmp.exists());
    assert_eq!(b.store.sweep_temp(Duration::ZERO).await.unwrap(), expected);
    assert!(!tmp.exists());
    assert_eq!(&b.store.get(&id).await.unwrap()[..], b"keep me");
    assert_eq!(b.store.sweep_temp(Duration::ZERO).await.unwrap(), 0);
}

/// A reader that fails, as a dropped network body would.
struct Broken;

impl tokio::io::AsyncRead for Broken {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "peer went away",
        )))
    }
}

async fn stream_read_error_leaves_nothing(b: Backend) {
    use tokio::io::AsyncReadExt;
    let part = part_size(&b);
    let store = b.reopen(b.opts().with_part_size(part)).await;
    // Fails inside the first part (single-put path) and after it (multipart).
    for len in [part / 2, part + part / 2] {
        let data = pattern(len, 60);
        let err = store
            .put_stream((&data[..]).chain(Broken))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "io", "{err}");
        assert!(err.to_string().contains("reading blob stream"), "{err}");
    }
    assert!(store.list_page(None, 10).await.unwrap().is_empty());
    assert_eq!(store.sweep_temp(Duration::ZERO).await.unwrap(), 0);
}
