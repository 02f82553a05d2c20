//! Process lifecycle: SIGTERM and SIGINT stop the server gracefully, letting a request that is
//! in flight finish (its data kept) while new connections are refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::client::{parse_response, request_head, with_query, Http};
use crate::fixtures::{sha256, Rng};
use crate::harness::{tempdir, Server};

#[test]
fn stop_signals_finish_in_flight_requests() {
    for sig in ["TERM", "INT"] {
        let tmp = tempdir();
        let root = tmp.path().join("root");
        let repo = "lifecycle/inflight";
        let data = Rng::new(20).bytes(1 << 20);
        let half = data.len() / 2;

        let server = Server::start(&root);
        let r = Http::new(server.addr).send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Vec::new()).expect(202, "POST upload");
        let loc = r.header("location").unwrap().to_string();

        // A PATCH whose body is half sent when the signal arrives.
        let mut conn = TcpStream::connect(server.addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let headers = [("connection", "close"), ("content-type", "application/octet-stream")];
        let head = request_head("PATCH", &loc, &server.host(), &headers, Some(data.len() as u64));
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(&data[..half]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        server.signal(sig);
        std::thread::sleep(Duration::from_millis(300));

        // No new connections once stopping...
        let refused = TcpStream::connect(server.addr);
        assert!(refused.is_err(), "SIG{sig}: a new connection was accepted while shutting down");
        // ...but the request in flight completes.
        conn.write_all(&data[half..]).unwrap();
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).unwrap();
        let r = parse_response(&raw, false).unwrap().expect(202, &format!("SIG{sig}: the in-flight PATCH"));
        assert_eq!(r.header("range"), Some(format!("0-{}", data.len() - 1).as_str()));
        server.expect_graceful_exit(&format!("SIG{sig}"));

        // The chunk it received is kept.
        let server = Server::start(&root);
        let http = Http::new(server.addr);
        let r = http.get(&loc).expect(204, "upload status after restart");
        assert_eq!(r.header("range"), Some(format!("0-{}", data.len() - 1).as_str()));
        let digest = sha256(&data);
        http.send("PUT", &with_query(&loc, "digest", &digest), &[], Vec::new()).expect(201, "PUT to finish");
        assert!(http.get(&format!("/v2/{repo}/blobs/{digest}")).expect(200, "GET blob").body == data);
        server.stop();
    }
}

/// A stop signal that follows the "wharfage is serving" log line closely must still stop the
/// server gracefully (the handlers are installed before that line): a supervisor that starts
/// and soon stops the registry must not see death by signal 15.
#[test]
fn sigterm_right_after_serving_is_graceful() {
    let tmp = tempdir();
    for _ in 0..20 {
        let server = Server::start(&tmp.path().join("root"));
        server.signal("TERM");
        server.expect_graceful_exit("SIGTERM right after the serving log line");
    }
}
