//! The one channel between a forked parent and child: framed messages over a socketpair, each
//! a 4-byte length and that many bytes, typed frames in JSON. pid 1 reports to the outer
//! process ([`InitMsg`]), the sandbox process to a build ([`run_in_child`]), a doctor probe
//! and the --map-auto helper to their parents through it. Each side closes the end it does
//! not use right after fork. A frame longer than its limit is refused, so a confused or
//! hostile peer cannot make the reader hold more than that.
//!
//! [`run_in_child`]: super::run_in_child

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
/// What pid 1 tells the outer process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitMsg {
    /// Mounts are done; steps are about to run.
    Ready,
    /// A setup step could not be done and nsroot went on without it.
    Warning(String),
    /// Step `index` ended with `code` (128+N for signal N); `exec_error` when it never started.
    StepExited {
        index: usize,
        code: i32,
        exec_error: Option<String>,
    },
    /// Setup failed; pid 1 exits with `code`.
    Failed { message: String, code: i32 },
    /// After a failed step: this watched mount has no space or inode left.
    Full(std::path::PathBuf),
    /// An interrupting signal stopped the steps (sealed mode).
    Interrupted,
}

/// The longest typed (JSON) frame.
const MAX_MESSAGE: usize = 16 << 20;
/// The longest raw frame (a session's records as a state file: at most 256 MiB, the state
/// file's own bound, plus its header).
const MAX_BYTES: usize = 257 << 20;

/// The sending end, for messages of type `T`.
pub struct Sender<T> {
    sock: UnixStream,
    _msg: PhantomData<fn(&T)>,
}

/// The receiving end, for messages of type `T`.
pub struct Receiver<T> {
    sock: UnixStream,
    _msg: PhantomData<fn() -> T>,
}

/// A connected pair.
pub fn pair<T>() -> std::io::Result<(Sender<T>, Receiver<T>)> {
    let (a, b) = UnixStream::pair()?;
    Ok((
        Sender {
            sock: a,
            _msg: PhantomData,
        },
        Receiver {
            sock: b,
            _msg: PhantomData,
        },
    ))
}

impl<T: Serialize> Sender<T> {
    /// Sends one message.
    ///
    /// Errors: the peer is gone (EPIPE) or the socket failed.
    pub fn send(&mut self, msg: &T) -> std::io::Result<()> {
        let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
        self.send_bytes(&body)
    }

    /// Sends one raw frame.
    ///
    /// Errors: as [`Sender::send`].
    pub fn send_bytes(&mut self, body: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
        self.sock.write_all(&len.to_le_bytes())?;
        self.sock.write_all(body)
    }

    /// Sends one message, ignoring a closed peer (pid 1's way: when the outer process is
    /// gone, its parent-death signal ends pid 1 anyway).
    pub fn tell(&mut self, msg: &T) {
        let _ = self.send(msg);
    }
}

impl<T> Sender<T> {
    /// The socket (to poll for the peer hanging up, to keep across a descriptor purge).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl<T: DeserializeOwned> Receiver<T> {
    /// Reads one message; None at the end of the stream.
    ///
    /// Errors: a frame over its limit, a malformed message, or a stream cut inside a frame
    /// (InvalidData / UnexpectedEof).
    pub fn recv(&mut self) -> std::io::Result<Option<T>> {
        let Some(body) = self.frame(MAX_MESSAGE)? else {
            return Ok(None);
        };
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad message: {e}"))
        })
    }
}

impl<T> Receiver<T> {
    /// Reads one raw frame; None at the end of the stream.
    ///
    /// Errors: as [`Receiver::recv`].
    pub fn recv_bytes(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.frame(MAX_BYTES)
    }

    fn frame(&mut self, max: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.sock.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a frame of {len} bytes, over the limit of {max}"),
            ));
        }
        let mut body = vec![0u8; len];
        self.sock.read_exact(&mut body)?;
        Ok(Some(body))
    }

    /// The socket (for poll).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_order() {
        let (mut tx, mut rx) = pair::<InitMsg>().unwrap();
        tx.tell(&InitMsg::Ready);
        tx.tell(&InitMsg::StepExited {
            index: 2,
            code: 127,
            exec_error: Some("x".into()),
        });
        tx.send_bytes(b"raw\n\0bytes").unwrap();
        drop(tx);
        assert_eq!(rx.recv().unwrap(), Some(InitMsg::Ready));
        assert_eq!(
            rx.recv().unwrap(),
            Some(InitMsg::StepExited {
                index: 2,
                code: 127,
                exec_error: Some("x".into())
            })
        );
        assert_eq!(
            rx.recv_bytes().unwrap().as_deref(),
            Some(&b"raw\n\0bytes"[..])
        );
        assert_eq!(rx.recv().unwrap(), None);
    }

    #[test]
    fn an_oversized_or_cut_frame_is_refused() {
        let (tx, mut rx) = pair::<InitMsg>().unwrap();
        let mut raw = tx.sock;
        raw.write_all(&(MAX_MESSAGE as u32 + 1).to_le_bytes())
            .unwrap();
        assert_eq!(
            rx.recv().unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        let (tx, mut rx) = pair::<InitMsg>().unwrap();
        let mut raw = tx.sock;
        raw.write_all(&[10, 0, 0, 0, b'{']).unwrap();
        drop(raw);
        assert_eq!(
            rx.recv().unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
    }
}
