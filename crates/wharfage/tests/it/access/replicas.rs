//! Replicas on one bucket share their token keys through the store: a token one replica
//! issued is accepted by another, even when both made a key of their own at start.

use super::{auth_args, claims, pw, Cred, Https};
use crate::s3::S3Store;

#[test]
fn a_token_from_one_replica_is_accepted_by_another() {
    let store = S3Store::shared();
    let dir = tempfile::tempdir().unwrap();
    let args = auth_args(dir.path());
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    // Started together: both may find no key and make one each.
    let (a, b) = std::thread::scope(|t| {
        let a = t.spawn(|| store.start(&extra));
        let b = t.spawn(|| store.start(&extra));
        (a.join().unwrap(), b.join().unwrap())
    });
    let (ha, hb) = (Https::new("", &format!("http://{}", a.addr)), Https::new("", &format!("http://{}", b.addr)));
    for (from, to) in [(&ha, &hb), (&hb, &ha)] {
        let t = from.token(Cred::Basic("ci", pw("ci")), &["repository:team/web:pull"]);
        assert_eq!(claims(&t)["sub"], "ci");
        assert_eq!(to.get("/v2/", Cred::Bearer(&t)).status, 200, "the other replica accepts the token");
        assert_eq!(to.get("/v2/team/web/tags/list", Cred::Bearer(&t)).status, 404, "and its scope: the repository is just empty");
        assert_eq!(to.get("/v2/team/other/tags/list", Cred::Bearer(&t)).status, 401, "but nothing beyond its scope");
    }
    let keys = store.keys("auth/keys/");
    assert!(!keys.is_empty() && keys.len() <= 2, "one key per replica at most: {keys:?}");
}
