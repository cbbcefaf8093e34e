//! The typed channel from pid 1 to the outer process: one JSON message per line over a
//! socketpair. Each side closes the end it does not use right after fork.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

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

/// pid 1's end.
pub struct Sender(UnixStream);

/// The outer process's end.
pub struct Receiver(BufReader<UnixStream>);

/// A connected pair.
pub fn pair() -> std::io::Result<(Sender, Receiver)> {
    let (a, b) = UnixStream::pair()?;
    Ok((Sender(a), Receiver(BufReader::new(b))))
}

impl Sender {
    /// Sends one message; a closed peer is ignored (the outer process is gone, pid 1 will be
    /// killed by its parent-death signal).
    pub fn send(&mut self, msg: &InitMsg) {
        let mut line = serde_json::to_vec(msg).unwrap_or_default();
        line.push(b'\n');
        let _ = self.0.write_all(&line);
    }

    /// The underlying socket (to poll for the peer hanging up).
    pub fn socket(&self) -> &UnixStream {
        &self.0
    }
}

impl Receiver {
    /// Reads one message; None at end of stream. A malformed line is an error.
    pub fn recv(&mut self) -> std::io::Result<Option<InitMsg>> {
        let mut line = String::new();
        if self.0.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad message from pid 1: {e}"),
            )
        })
    }

    /// The underlying socket (for poll).
    pub fn socket(&self) -> &UnixStream {
        self.0.get_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_order() {
        let (mut tx, mut rx) = pair().unwrap();
        tx.send(&InitMsg::Ready);
        tx.send(&InitMsg::StepExited {
            index: 2,
            code: 127,
            exec_error: Some("x".into()),
        });
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
        assert_eq!(rx.recv().unwrap(), None);
    }
}
