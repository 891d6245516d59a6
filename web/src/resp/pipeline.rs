//! One connection's pipeline: the commands buffered on a connection, run concurrently wherever
//! the order Redis promises allows it, answered in order.
//!
//! Redis runs a connection's commands one after the other, so a client that pipelines sees
//! each command act after the ones before it. Here the commands of one read from the socket
//! are grouped, in order:
//! - consecutive writes are queued in the write batcher together, adjacent and in order
//!   ([`WriteBatcher::submit`]): they land in one log entry (or consecutive ones, in order)
//!   and share its commit, where one after the other each waited for a commit of its own;
//! - the reads after them wait for those writes, then share one read barrier — or none: once
//!   a write of this pipeline is acknowledged at log index `i`, waiting until this node has
//!   applied `i` is enough (below);
//! - a write after a read waits until the read has read (else the read could see it);
//! - connection commands (`PING`, `HELLO`, `CLIENT`, …) are answered where they stand.
//!
//! Replies go out in order; the ones complete before a group waits are written before it waits.
//! While a group waits, the connection is still read (into the buffer of the next round, up to
//! [`READ_AHEAD`]): a client that closes it has given up, and its writes still queued are
//! dropped, never proposed (the batcher skips a write nobody waits for).
//!
//! Why the applied index of a write of this pipeline is a read barrier for the reads after it:
//! every command of the pipeline was received before any of its writes was proposed, so a
//! write `W` of another client acknowledged before one of our reads was sent was committed
//! before our write was proposed; the leader that appended ours held every committed entry
//! (Raft's leader completeness), so `W`'s index is below ours, and a node that applied ours
//! applied `W`. The read then also sees this pipeline's own earlier writes, as on Redis.
//!
//! [`WriteBatcher::submit`]: sessionraft_raft::consensus::batcher::WriteBatcher::submit

use std::future::Future;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use sessionraft_raft::clock::now_ms;
use sessionraft_raft::consensus::batcher::Queued;
use sessionraft_raft::Command;

use super::commands::{
    is_write, no_quorum, plan, record, upper, Answer, Conn, ReadOp, Shared, Step,
};
use super::reply::Reply;

/// How much a connection may buffer of its next commands while its current ones wait.
pub(crate) const READ_AHEAD: usize = 1 << 20;

/// The client closed the connection (or it failed) while its commands waited: nothing more is
/// answered.
pub(crate) struct Gone;

/// One command's place in the replies.
struct Slot {
    /// The command's name, upper case (the metric label).
    name: String,
    /// The protocol its reply is encoded in (`HELLO` changes it for what follows).
    proto: u8,
    reply: Option<Reply>,
}

struct Pipeline<'a> {
    shared: &'a Shared,
    slots: Vec<Slot>,
    /// Slots already encoded and written.
    written: usize,
    /// The writes of the group being gathered.
    writes: Vec<(usize, Command, Answer)>,
    /// The reads of the group being gathered.
    reads: Vec<(usize, ReadOp)>,
    /// The highest log index of a write of this pipeline acknowledged so far (see the module
    /// documentation).
    fence: Option<u64>,
}

/// Run `commands` (each non-empty, parsed from one read of the connection) and write their
/// replies to `stream` in order, through `out` (left empty). Stops after a `QUIT` (answered).
/// Bytes that arrive meanwhile are appended to `buf`.
///
/// # Errors
/// Writing to the stream failed (`Err`), or the client went away while a group waited
/// (`Ok(Err(Gone))`: its queued writes are abandoned).
pub(crate) async fn run<S>(
    shared: &Shared,
    conn: &mut Conn,
    commands: Vec<Vec<Vec<u8>>>,
    stream: &mut S,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> std::io::Result<Result<(), Gone>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut p = Pipeline {
        shared,
        slots: Vec::with_capacity(commands.len()),
        written: 0,
        writes: Vec::new(),
        reads: Vec::new(),
        fence: None,
    };
    for args in commands {
        if conn.quit {
            break;
        }
        let name = upper(&args[0]);
        // A write waits for the reads before it, and takes its `now` after them.
        let write_next = is_write(&name);
        if !p.reads.is_empty() && write_next {
            if p.run_reads(stream, buf).await.is_err() {
                return Ok(Err(Gone));
            }
            p.write_answered(stream, out).await?;
        }
        let step = plan(shared, conn, &name, args);
        let slot = p.slots.len();
        p.slots.push(Slot {
            name,
            proto: conn.proto,
            reply: None,
        });
        let ran = match step {
            Step::Now(reply) => {
                p.slots[slot].reply = Some(reply);
                false
            }
            Step::Write(cmd, answer) => {
                let ran = !p.reads.is_empty();
                if ran && p.run_reads(stream, buf).await.is_err() {
                    return Ok(Err(Gone));
                }
                p.writes.push((slot, cmd, answer));
                ran
            }
            Step::Read(op) => {
                let ran = !p.writes.is_empty();
                if ran && p.run_writes(stream, buf).await.is_err() {
                    return Ok(Err(Gone));
                }
                p.reads.push((slot, op));
                ran
            }
        };
        if ran {
            p.write_answered(stream, out).await?;
        }
    }
    if p.run_writes(stream, buf).await.is_err() || p.run_reads(stream, buf).await.is_err() {
        return Ok(Err(Gone));
    }
    p.write_answered(stream, out).await?;
    Ok(Ok(()))
}

/// Wait for `work` while reading what the client sends meanwhile into `buf` (up to
/// [`READ_AHEAD`]); `Err(Gone)` — `work` dropped — when the client closes the connection.
async fn watching<S, F>(work: F, stream: &mut S, buf: &mut Vec<u8>) -> Result<F::Output, Gone>
where
    S: AsyncRead + Unpin,
    F: Future,
{
    tokio::pin!(work);
    loop {
        if buf.len() >= READ_AHEAD {
            return Ok(work.await);
        }
        buf.reserve(16 * 1024);
        tokio::select! {
            done = &mut work => return Ok(done),
            // `read_buf` is cancel safe: what it read is in `buf`.
            read = stream.read_buf(buf) => match read {
                Ok(0) | Err(_) => return Err(Gone),
                Ok(_) => {}
            },
        }
    }
}

impl Pipeline<'_> {
    /// Queue the gathered writes together and wait for all of them.
    async fn run_writes<S>(&mut self, stream: &mut S, buf: &mut Vec<u8>) -> Result<(), Gone>
    where
        S: AsyncRead + Unpin,
    {
        if self.writes.is_empty() {
            return Ok(());
        }
        let (places, cmds): (Vec<(usize, Answer)>, Vec<Command>) = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(slot, cmd, answer)| ((slot, answer), cmd))
            .unzip();
        let queued = self.shared.batcher.submit(cmds);
        let outcomes = watching(
            futures_util::future::join_all(queued.into_iter().map(Queued::outcome)),
            stream,
            buf,
        )
        .await?;
        for ((slot, answer), outcome) in places.into_iter().zip(outcomes) {
            if let Ok(p) = &outcome {
                // Index 0: a cluster version that returns no index (0.1 forwarding).
                if p.log_index > 0 {
                    self.fence = Some(self.fence.map_or(p.log_index, |f| f.max(p.log_index)));
                }
            }
            self.slots[slot].reply = Some(answer.reply(outcome));
        }
        Ok(())
    }

    /// Make the gathered reads linearizable — after this pipeline's acknowledged writes when
    /// there are any, else after a read barrier — and read them at one `now`.
    async fn run_reads<S>(&mut self, stream: &mut S, buf: &mut Vec<u8>) -> Result<(), Gone>
    where
        S: AsyncRead + Unpin,
    {
        if self.reads.is_empty() {
            return Ok(());
        }
        let reads = std::mem::take(&mut self.reads);
        let cluster = &self.shared.cluster;
        let ready = if reads.iter().any(|(_, op)| op.needs_barrier()) {
            let fence = self.fence;
            Some(
                watching(
                    async move {
                        match fence {
                            Some(index) => cluster.applied_at_least(index).await,
                            None => cluster.read_barrier().await,
                        }
                    },
                    stream,
                    buf,
                )
                .await?,
            )
        } else {
            None
        };
        let now = now_ms();
        for (slot, op) in reads {
            let reply = match &ready {
                Some(Err(e)) if op.needs_barrier() => no_quorum(e),
                _ => op.run(self.shared, now),
            };
            self.slots[slot].reply = Some(reply);
        }
        Ok(())
    }

    /// Encode and write the replies answered so far, in order, up to the first one still
    /// waiting.
    async fn write_answered<S>(&mut self, stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()>
    where
        S: AsyncWrite + Unpin,
    {
        while let Some(slot) = self.slots.get_mut(self.written) {
            let Some(reply) = slot.reply.take() else {
                break;
            };
            record(self.shared, &slot.name, &reply);
            reply.encode(slot.proto, out);
            self.written += 1;
        }
        if !out.is_empty() {
            stream.write_all(out).await?;
            stream.flush().await?;
            out.clear();
        }
        Ok(())
    }
}
