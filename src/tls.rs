//! TLS for the RESP and HTTP listeners: rustls on the ring provider (no
//! OpenSSL), with Redis's flag names (`--tls-port`, `--tls-cert-file`,
//! `--tls-key-file`, `--tls-ca-cert-file`, `--tls-auth-clients`).
//!
//! - The certificate, key and CA files are read at start-up (a bad file
//!   stops the start) and again on [`Tls::reload`] (SIGHUP): new handshakes
//!   use the new files, connections already open keep theirs, and files
//!   that do not load leave the old ones in use.
//! - Client certificates: `no` (the default, as ElastiCache: clients show
//!   none), `yes` (required, checked against the CA file) or `optional`
//!   (checked when shown).
//! - A handshake must finish within the server's auth timeout; plaintext
//!   sent to a TLS port fails the handshake and the socket is closed.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// Whether clients must show a certificate (`--tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthClients {
    #[default]
    No,
    Yes,
    Optional,
}

/// Where the certificate material is.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub auth_clients: AuthClients,
}

/// A TLS server configuration that can be reloaded.
pub struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads the files (an error names the file and what is wrong).
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let config = build(&files)?;
        Ok(Tls {
            files,
            current: RwLock::new(config),
        })
    }

    /// Reads the files again; on error the configuration in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let config = build(&self.files)?;
        *self.current.write() = config;
        Ok(())
    }

    /// An acceptor for the next handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }
}

fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect())
        .map_err(|e| format!("tls-cert-file {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls-cert-file {}: no certificate in it",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("tls-key-file {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?;
    let builder = match files.auth_clients {
        AuthClients::No => builder.with_no_client_auth(),
        AuthClients::Yes | AuthClients::Optional => {
            let ca = files.ca.as_ref().ok_or(
                "tls-auth-clients yes|optional needs tls-ca-cert-file to check certificates against",
            )?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("tls-ca-cert-file {}: {e}", ca.display()))?
            {
                let cert = cert.map_err(|e| format!("tls-ca-cert-file {}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls-ca-cert-file {}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if files.auth_clients == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("tls-ca-cert-file {}: {e}", ca.display()))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls-cert-file/tls-key-file: {e}"))?;
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}

/// Ciphertext rustls may hold for the socket before a write is refused
/// (then the client must read, as with a plain socket's send buffer).
const TLS_BUFFER_LIMIT: usize = 256 * 1024;

/// A client connection's byte stream, plain or TLS, with the readiness
/// interface the connection loop uses (`readable`, `try_read_buf`,
/// `writable`, `try_write`): TLS runs over the same non-blocking socket,
/// after the handshake.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsTransport>),
}

pub struct TlsTransport {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    /// Decrypted bytes wait in rustls: readable without the socket.
    plaintext: AtomicBool,
}

/// The socket as `io::Read`/`io::Write` for rustls (non-blocking).
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transport {
    /// A connection after its TLS handshake.
    pub fn tls(stream: tokio_rustls::server::TlsStream<TcpStream>) -> Transport {
        let (tcp, mut tls) = stream.into_inner();
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        let plaintext = AtomicBool::new(
            tls.process_new_packets()
                .is_ok_and(|s| s.plaintext_bytes_to_read() > 0),
        );
        Transport::Tls(Box::new(TlsTransport {
            tcp,
            tls,
            plaintext,
        }))
    }

    /// The socket under the stream.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.tcp,
        }
    }

    pub fn set_nodelay(&self, on: bool) -> std::io::Result<()> {
        self.tcp().set_nodelay(on)
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp().local_addr()
    }

    /// Waits until a read may make progress.
    ///
    /// Readiness is polled (`poll_read_ready`: the waker goes in the
    /// socket's one reader slot), not awaited (`readable()`: a waiter node
    /// linked into the socket's list, and unlinked under its lock again
    /// when the connection loop drops it): the loop waits once per request
    /// at pipeline 1, and that cost a request 3% of its instructions. Only
    /// the connection's own task waits for its socket this way (`peek`
    /// in `conn::block` awaits), so one slot serves.
    pub async fn readable(&self) -> std::io::Result<()> {
        match self {
            Transport::Tls(t) if t.plaintext.load(Ordering::Acquire) => Ok(()),
            _ => std::future::poll_fn(|cx| self.tcp().poll_read_ready(cx)).await,
        }
    }

    /// Waits until the socket takes more bytes (polled, as [`Self::readable`]).
    pub async fn writable(&self) -> std::io::Result<()> {
        std::future::poll_fn(|cx| self.tcp().poll_write_ready(cx)).await
    }

    /// Peeks at the socket (ciphertext on TLS): `Ok(0)` means the peer
    /// closed.
    pub async fn peek(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp().peek(buf).await
    }

    /// Whether TLS records wait for the socket (write them with
    /// `try_write(&[])`).
    pub fn pending_output(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.tls.wants_write(),
        }
    }

    /// Reads what is there into `buf`'s spare capacity, at most `max`
    /// bytes; `Ok(0)` = closed.
    ///
    /// A plain read that leaves room unfilled drained the socket: its
    /// readiness is cleared then, so the connection waits for the next
    /// bytes without the `EAGAIN` read that would otherwise find it empty
    /// (memcached's and Redis's loops do the same; one syscall of three
    /// per request at pipeline 1). The socket is edge-triggered: bytes that
    /// arrive after the read raise readiness again, and a peer's close is
    /// never cleared (tokio keeps closed states).
    pub fn try_read_buf(&mut self, buf: &mut BytesMut, max: usize) -> std::io::Result<usize> {
        let t = match self {
            Transport::Plain(s) => {
                let room = (buf.capacity() - buf.len()).min(max);
                let mut got = None;
                let read = s.try_io(tokio::io::Interest::READABLE, || {
                    let n = s.try_read_buf(&mut bytes::BufMut::limit(&mut *buf, max))?;
                    got = Some(n);
                    if n > 0 && n < room {
                        // Drained: have tokio clear the readiness.
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    Ok(n)
                });
                return match (read, got) {
                    (_, Some(n)) => Ok(n),
                    (Err(e), None) => Err(e),
                    (Ok(n), None) => Ok(n),
                };
            }
            Transport::Tls(t) => t,
        };
        loop {
            let spare = (buf.capacity() - buf.len()).min(max);
            if spare == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let start = buf.len();
            buf.resize(start + spare, 0);
            let got = t.tls.reader().read(&mut buf[start..]);
            buf.truncate(start + *got.as_ref().unwrap_or(&0));
            match got {
                Ok(n) => {
                    let more = t
                        .tls
                        .process_new_packets()
                        .is_ok_and(|s| s.plaintext_bytes_to_read() > 0);
                    t.plaintext.store(more, Ordering::Release);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            t.plaintext.store(false, Ordering::Release);
            match t.tls.read_tls(&mut Socket(&t.tcp)) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    t.tls
                        .process_new_packets()
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                    // Alerts or key updates to send back: best effort now,
                    // the rest goes with the next write.
                    let _ = t.flush();
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes what the socket takes now (records pending first); `Ok(n)` =
    /// `n` bytes of `data` accepted.
    pub fn try_write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let t = match self {
            Transport::Plain(s) => return s.try_write(data),
            Transport::Tls(t) => t,
        };
        t.flush()?;
        if data.is_empty() {
            return Ok(0);
        }
        let n = t.tls.writer().write(data)?;
        match t.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes all of `data` (closing replies).
    pub async fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() || self.pending_output() {
            match self.try_write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl TlsTransport {
    /// Sends the records rustls holds; `WouldBlock` if the socket is full.
    fn flush(&mut self) -> std::io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut Socket(&self.tcp))? == 0 {
                break;
            }
        }
        Ok(())
    }
}
