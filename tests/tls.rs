//! TLS on the RESP port (the `redis` crate with rustls, `redis-cli --tls`)
//! and HTTPS on the control port, certificates made here with rcgen:
//! client certificates required or not, plaintext and stalled handshakes
//! closed cleanly, certificates reloaded without dropping connections, and
//! `--port 0` turning plain TCP off.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use stratus::config::{Port, ServeConfig};
use stratus::tls::AuthClients;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA, a server certificate for 127.0.0.1/localhost and a client
/// certificate, as PEM files in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("stratus-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = ca.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca, ca_key);
        let leaf = |sans: Vec<String>| {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(sans)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()]);
        let (client_cert, client_key) = leaf(vec!["client".into()]);
        let pki = Pki {
            dir,
            ca_pem: ca_cert.pem(),
            client_cert,
            client_key,
        };
        pki.write("ca.pem", &pki.ca_pem);
        pki.write("server.pem", &server_cert);
        pki.write("server.key", &server_key);
        pki
    }

    fn write(&self, file: &str, text: &str) {
        std::fs::write(self.dir.join(file), text).expect("write pem");
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn config(&self, auth_clients: AuthClients) -> ServeConfig {
        ServeConfig {
            tls_port: Port::Any,
            tls_cert_file: Some(self.path("server.pem")),
            tls_key_file: Some(self.path("server.key")),
            tls_ca_cert_file: Some(self.path("ca.pem")),
            tls_auth_clients: auth_clients,
            auth_timeout_secs: 1,
            ..ServeConfig::default()
        }
    }

    /// A redis-crate client over TLS trusting this CA (with the client
    /// certificate if `mtls`).
    fn client(&self, addr: std::net::SocketAddr, mtls: bool) -> redis::Client {
        let url = format!("rediss://{}:{}/", addr.ip(), addr.port());
        redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: mtls.then(|| redis::ClientTlsConfig {
                    client_cert: self.client_cert.clone().into_bytes(),
                    client_key: self.client_key.clone().into_bytes(),
                }),
                root_cert: Some(self.ca_pem.clone().into_bytes()),
            },
        )
        .expect("tls client")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn ping(client: &redis::Client) -> redis::RedisResult<String> {
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_over_tls_with_the_redis_crate_and_redis_cli() {
    let pki = Pki::new("resp");
    let server = start(pki.config(AuthClients::No)).await;
    let tls_addr = server.tls_addr.expect("tls listener");
    let client = pki.client(tls_addr, false);
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("tls connect");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg(vec![b'v'; 300_000])
        .query_async(&mut c)
        .await
        .expect("set");
    let v: Vec<u8> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(
        v.len(),
        300_000,
        "a reply larger than the TLS buffer arrives whole"
    );
    // Pipelined requests over TLS.
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("INCR").arg(format!("n{}", i % 7));
    }
    let counts: Vec<i64> = pipe.query_async(&mut c).await.expect("pipeline");
    assert_eq!(counts.len(), 500);
    // The plain port still serves, and sees the same cache.
    let mut plain = Raw::connect(server.resp_addr).await;
    assert_eq!(plain.cmd(&["STRLEN", "k"]).await, int(300_000));

    // redis-cli with --tls.
    let out = tokio::process::Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(pki.path("ca.pem"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &tls_addr.port().to_string(),
            "STRLEN",
            "k",
        ])
        .output()
        .await
        .expect("redis-cli");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "300000",
        "{out:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_stalled_handshakes_are_closed_and_leave_nothing() {
    let pki = Pki::new("bad");
    let server = start(pki.config(AuthClients::No)).await;
    let tls_addr = server.tls_addr.expect("tls listener");
    // RESP in clear to the TLS port: the handshake fails, the socket closes.
    let mut s = tokio::net::TcpStream::connect(tls_addr)
        .await
        .expect("connect");
    s.write_all(b"*1\r\n$4\r\nPING\r\n").await.expect("write");
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a TLS alert, then the close
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "plaintext on the TLS port was not closed");
    // A handshake that never starts is closed at the auth timeout (1 s).
    let mut idle = Raw::connect(tls_addr).await;
    idle.assert_closed().await;
    // A certificate the client does not trust: refused by the client, and
    // the server goes on.
    let other = Pki::new("other");
    assert!(ping(&other.client(tls_addr, false)).await.is_err());
    assert_eq!(
        ping(&pki.client(tls_addr, false)).await.expect("ping"),
        "PONG"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_required_or_optional() {
    let pki = Pki::new("mtls");
    let server = start(pki.config(AuthClients::Yes)).await;
    let tls_addr = server.tls_addr.expect("tls listener");
    assert!(
        ping(&pki.client(tls_addr, false)).await.is_err(),
        "no client certificate must be refused"
    );
    assert_eq!(
        ping(&pki.client(tls_addr, true)).await.expect("mtls"),
        "PONG"
    );
    server.shutdown().await;

    let server = start(pki.config(AuthClients::Optional)).await;
    let tls_addr = server.tls_addr.expect("tls listener");
    assert_eq!(
        ping(&pki.client(tls_addr, false)).await.expect("no cert"),
        "PONG"
    );
    assert_eq!(
        ping(&pki.client(tls_addr, true)).await.expect("cert"),
        "PONG"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_without_dropping_connections() {
    let pki = Pki::new("reload");
    let server = start(pki.config(AuthClients::No)).await;
    let tls_addr = server.tls_addr.expect("tls listener");
    let old_client = pki.client(tls_addr, false);
    let mut kept = old_client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    // New files from another CA; a broken reload keeps the old ones.
    let next = Pki::new("reload-next");
    std::fs::write(pki.path("server.pem"), "not a certificate").expect("write");
    assert!(server.reload_tls().is_err());
    assert_eq!(
        ping(&old_client).await.expect("old files still in use"),
        "PONG"
    );
    for f in ["server.pem", "server.key"] {
        std::fs::copy(next.path(f), pki.path(f)).expect("copy");
    }
    server.reload_tls().expect("reload");
    // The connection made before the reload goes on; new handshakes use
    // the new certificate.
    let pong: String = redis::cmd("PING")
        .query_async(&mut kept)
        .await
        .expect("kept");
    assert_eq!(pong, "PONG");
    assert!(
        ping(&old_client).await.is_err(),
        "old CA must no longer verify"
    );
    assert_eq!(
        ping(&next.client(tls_addr, false)).await.expect("new"),
        "PONG"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_turns_plain_tcp_off() {
    let pki = Pki::new("tlsonly");
    let server = start(ServeConfig {
        port: Port::Off,
        ..pki.config(AuthClients::No)
    })
    .await;
    let tls_addr = server.tls_addr.expect("tls listener");
    assert_eq!(server.resp_addr, tls_addr, "the only RESP address is TLS");
    assert_eq!(
        ping(&pki.client(tls_addr, false)).await.expect("ping"),
        "PONG"
    );
    assert!(
        ServeConfig {
            port: Port::Off,
            tls_port: Port::Off,
            ..ServeConfig::default()
        }
        .validate()
        .is_err()
    );
    assert!(
        ServeConfig {
            tls_port: Port::Any,
            ..ServeConfig::default()
        }
        .validate()
        .is_err(),
        "TLS without certificate files"
    );
    server.shutdown().await;
}

/// HTTPS on the control port with a real HTTP client (hyper over rustls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_over_https() {
    let pki = Pki::new("https");
    let server = start(ServeConfig {
        http_tls: true,
        ..pki.config(AuthClients::No)
    })
    .await;
    let (status, body) = https_get(&pki, server.http_addr, "/healthz")
        .await
        .expect("https");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, body) = https_get(&pki, server.http_addr, "/v1/caches")
        .await
        .expect("https");
    assert_eq!(status, 200, "{body}");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let mut s = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    server.shutdown().await;
}

/// HTTPS with client certificates required: refused without one, served
/// with one the CA signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_api_over_mutual_tls() {
    let pki = Pki::new("https-mtls");
    let server = start(ServeConfig {
        http_tls: true,
        ..pki.config(AuthClients::Yes)
    })
    .await;
    assert!(https_get(&pki, server.http_addr, "/healthz").await.is_err());
    let (status, _) = https_get_as(&pki, server.http_addr, "/healthz", true)
        .await
        .expect("mtls");
    assert_eq!(status, 200);
    server.shutdown().await;
}

async fn https_get(
    pki: &Pki,
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<(u16, String), String> {
    https_get_as(pki, addr, path, false).await
}

async fn https_get_as(
    pki: &Pki,
    addr: std::net::SocketAddr,
    path: &str,
    client_cert: bool,
) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots);
    let config = if client_cert {
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pki.client_cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes())
            .map_err(|e| e.to_string())?;
        config
            .with_client_auth_cert(certs, key)
            .map_err(|e| e.to_string())?
    } else {
        config.with_no_client_auth()
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "127.0.0.1")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The Memcached port with `--memcached-tls`: TLS only (memcached's `-Z`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memcached_port_over_tls() {
    let pki = Pki::new("memcached");
    let server = start(ServeConfig {
        memcached_tls: true,
        ..pki.config(AuthClients::No)
    })
    .await;
    let addr = server.memcached_addr.expect("memcached port");
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.expect("ca pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.write_all(b"set k 3 0 2\r\nhi\r\nget k\r\n")
        .await
        .expect("write");
    let want = b"STORED\r\nVALUE k 3 2\r\nhi\r\nEND\r\n";
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut got))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(got, want);
    // Plain text to the TLS port gets no Memcached answer.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"version\r\n").await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("VERSION"));
    server.shutdown().await;
}
