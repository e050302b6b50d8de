//! A lean RESP client for load: writes pre-encoded commands, pipelines
//! `depth` at a time, and skips over replies counting errors by kind,
//! recording each request's latency (send of its batch to its reply).

use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Encodes one command as a RESP multibulk.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Kinds of error replies a load run counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Errors {
    pub throttled: u64,
    pub oom: u64,
    pub other: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.throttled + self.oom + self.other
    }

    /// Counts one reply by its error word (`None`: not an error).
    pub fn record(&mut self, err: Option<&[u8]>) {
        match err {
            Some(b"THROTTLED") => self.throttled += 1,
            Some(b"OOM") => self.oom += 1,
            Some(_) => self.other += 1,
            None => {}
        }
    }

    pub fn add(&mut self, o: &Errors) {
        self.throttled += o.throttled;
        self.oom += o.oom;
        self.other += o.other;
    }
}

/// Returns the length of the first whole reply in `buf`, if complete, and
/// whether it is an error (with its first word).
pub fn reply_len(buf: &[u8]) -> Option<(usize, Option<&[u8]>)> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = &buf[..line_end];
    let rest = line_end + 2;
    match line.first()? {
        b'+' | b':' | b'_' | b',' | b'#' => Some((rest, None)),
        b'-' => {
            let word_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
            Some((rest, Some(&line[1..word_end])))
        }
        b'$' | b'=' => {
            let n: i64 = std::str::from_utf8(&line[1..]).ok()?.parse().ok()?;
            if n < 0 {
                return Some((rest, None));
            }
            let end = rest + n as usize + 2;
            (buf.len() >= end).then_some((end, None))
        }
        b'*' | b'~' | b'%' => {
            let n: i64 = std::str::from_utf8(&line[1..]).ok()?.parse().ok()?;
            let items = if line[0] == b'%' { n * 2 } else { n };
            let mut at = rest;
            for _ in 0..items.max(0) {
                let (len, _) = reply_len(&buf[at..])?;
                at += len;
            }
            Some((at, None))
        }
        _ => Some((rest, None)),
    }
}

/// A pipelined connection.
pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
}

impl Conn {
    pub async fn connect(
        addr: std::net::SocketAddr,
        auth: Option<(&str, &str)>,
    ) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
        };
        if let Some((user, pass)) = auth {
            let mut errors = Errors::default();
            c.send_batch(
                &[encode(&[b"AUTH", user.as_bytes(), pass.as_bytes()])],
                None,
                &mut errors,
            )
            .await?;
            if errors.total() > 0 {
                return Err(std::io::Error::other("AUTH refused"));
            }
        }
        Ok(c)
    }

    /// Sends `batch` in one write, reads one reply per command; records the
    /// batch's round trip once per command in `hist`.
    pub async fn send_batch(
        &mut self,
        batch: &[Vec<u8>],
        hist: Option<&mut Histogram<u64>>,
        errors: &mut Errors,
    ) -> std::io::Result<Duration> {
        let start = Instant::now();
        let bytes: Vec<u8> = batch.concat();
        self.stream.write_all(&bytes).await?;
        let mut pending = batch.len();
        while pending > 0 {
            while pending > 0 {
                let Some((len, err)) = reply_len(&self.rbuf) else {
                    break;
                };
                errors.record(err);
                self.rbuf.advance(len);
                pending -= 1;
            }
            if pending > 0 && self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
        }
        let rtt = start.elapsed();
        if let Some(h) = hist {
            let us = rtt.as_micros().max(1) as u64;
            let _ = h.record_n(us, batch.len() as u64);
        }
        Ok(rtt)
    }
}

impl Conn {
    /// Sends one request and returns its whole reply, raw.
    pub async fn roundtrip(&mut self, req: &[u8]) -> std::io::Result<Vec<u8>> {
        self.stream.write_all(req).await?;
        loop {
            if let Some((len, _)) = reply_len(&self.rbuf) {
                let reply = self.rbuf[..len].to_vec();
                self.rbuf.advance(len);
                return Ok(reply);
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            }
        }
    }

    /// The socket and what has been read past the last reply (for a client
    /// that reads its own way, e.g. with receive timestamps).
    pub fn into_parts(self) -> (TcpStream, BytesMut) {
        (self.stream, self.rbuf)
    }

    /// Writes raw bytes without reading (for unfinished requests).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }
}

/// The cursor of a SCAN-family reply (`*2\r\n$n\r\n<cursor>\r\n...`).
pub fn scan_cursor(reply: &[u8]) -> Option<Vec<u8>> {
    let mut lines = reply.split(|&b| b == b'\n');
    lines.next()?;
    lines.next()?;
    let cursor = lines.next()?;
    Some(cursor.strip_suffix(b"\r").unwrap_or(cursor).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lengths() {
        assert_eq!(reply_len(b"+OK\r\n"), Some((5, None)));
        assert_eq!(reply_len(b"$3\r\nabc\r\n+"), Some((9, None)));
        assert_eq!(reply_len(b"$3\r\nab"), None);
        assert_eq!(reply_len(b"*2\r\n$1\r\na\r\n:1\r\n"), Some((15, None)));
        assert_eq!(
            reply_len(b"-THROTTLED cache\r\n"),
            Some((18, Some(&b"THROTTLED"[..])))
        );
        assert_eq!(reply_len(b"$-1\r\n"), Some((5, None)));
    }
}
