//! One connection's pipeline: the commands a client sends without waiting for replies, run
//! concurrently wherever the order Redis promises allows it, answered in order.
//!
//! Redis runs a connection's commands one after the other, so a client that pipelines sees
//! each command act after the ones before it. Here the commands are cut into *segments*, in
//! order: every read from the socket starts one, and a segment also ends before a write that
//! changes a key a read not yet run reads (or before any write when such a read reads the whole
//! keyspace: `DBSIZE`, `SCAN`, `INFO`) — that write then waits until every segment before it
//! is answered, and is planned (takes its `now`) only after those reads have read, so they
//! never see it. A segment's writes are queued in the write batcher as soon as it ends,
//! together, adjacent and in order ([`WriteBatcher::submit`]): they land in one log entry (or
//! consecutive ones, in order) and share its commit; the segments after it are read, planned
//! and queued while it commits, so their writes follow it in the log. In a segment:
//! - the reads wait for the segment's writes and for every earlier segment's writes, then
//!   share one read barrier — or none: once a write of their segment is acknowledged at log
//!   index `i`, waiting until this node has applied `i` is enough (below). A read placed
//!   before a write of its segment reads after it too, which it cannot tell: that write changes
//!   none of the keys it reads;
//! - connection commands (`PING`, `HELLO`, `CLIENT`, …) are answered where they stand.
//!
//! node-redis (connect-redis's client) sends every request of an Express app over one
//! connection, so the `GET`s, `SET`s and `EXPIRE`s of concurrent requests on different sessions
//! arrive interleaved, and keep arriving while earlier ones commit: each waits for its own
//! commit, not for the commits of every read-to-write turn before it.
//!
//! Replies go out in order, a segment's as soon as it and every segment before it are answered.
//! The connection is read all the while (at most [`READ_AHEAD`] bytes buffered, at most
//! [`MAX_SEGMENTS`] segments in flight): a client that closes it has given up, and its writes
//! still queued are dropped, never proposed (the batcher skips a write nobody waits for).
//!
//! Why the applied index of a write of a segment is a read barrier for the reads of that
//! segment: every command of the segment was received before its writes were proposed, so a
//! write `W` of another client acknowledged before one of our reads was sent was committed
//! before our write was proposed; the leader that appended ours held every committed entry
//! (Raft's leader completeness), so `W`'s index is below ours, and a node that applied ours
//! applied `W`. The read then also sees the connection's own earlier writes, as on Redis.
//!
//! [`WriteBatcher::submit`]: sessionraft_raft::consensus::batcher::WriteBatcher::submit

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

use sessionraft_raft::clock::now_ms;
use sessionraft_raft::consensus::batcher::Queued;
use sessionraft_raft::Command;

use super::commands::{
    is_write, no_quorum, plan, record, upper, written_keys, Answer, Conn, ReadOp, Shared, Step,
};
use super::reply::Reply;
use super::READ_CHUNK;

/// How much a connection may buffer of its next commands while its segments wait.
pub(crate) const READ_AHEAD: usize = 1 << 20;

/// At most this many segments of one connection wait at once; then the connection is not read
/// until one is answered.
pub(crate) const MAX_SEGMENTS: usize = 64;

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

/// What a segment's reads read: some keys, or (`None`) the whole keyspace.
type ReadSet = Option<Vec<Vec<u8>>>;

/// A segment's answered slots, in order.
type Answered<'a> = Pin<Box<dyn Future<Output = Vec<Slot>> + Send + 'a>>;

/// The segment being gathered.
#[derive(Default)]
struct Gathering {
    slots: Vec<Slot>,
    writes: Vec<(usize, Command, Answer)>,
    reads: Vec<(usize, ReadOp)>,
}

/// A connection's segments: the one being gathered and the ones in flight, in order.
pub(crate) struct Pipeline<'a> {
    shared: &'a Shared,
    gathering: Gathering,
    in_flight: FuturesOrdered<Answered<'a>>,
    /// What the reads of each segment in flight read, in the same order.
    reading: VecDeque<Vec<ReadSet>>,
    /// Resolves, with the highest log index acknowledged among them, once the writes of every
    /// segment in flight are answered.
    writes_done: Option<oneshot::Receiver<Option<u64>>>,
}

impl<'a> Pipeline<'a> {
    pub(crate) fn new(shared: &'a Shared) -> Self {
        Self {
            shared,
            gathering: Gathering::default(),
            in_flight: FuturesOrdered::new(),
            reading: VecDeque::new(),
            writes_done: None,
        }
    }

    /// Whether a segment waits for its answers.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Whether the connection should wait for answers before reading more.
    pub(crate) fn is_full(&self) -> bool {
        self.in_flight.len() >= MAX_SEGMENTS
    }

    /// Plan `args` (a non-empty command) into the segment being gathered. A write that
    /// changes what a read not yet run reads first sends the segment and waits until every
    /// segment is answered (their replies written to `stream`).
    ///
    /// # Errors
    /// Writing to the stream failed (`Err`), or the client went away while the segments
    /// waited (`Ok(Err(Gone))`).
    pub(crate) async fn plan<S>(
        &mut self,
        conn: &mut Conn,
        args: Vec<Vec<u8>>,
        stream: &mut S,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<Result<(), Gone>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = upper(&args[0]);
        if is_write(&name) && self.reads_any(written_keys(&name, &args)) {
            self.send();
            if let Err(gone) = self.drain(stream, buf, out).await? {
                return Ok(Err(gone));
            }
        }
        let step = plan(self.shared, conn, &name, args);
        let g = &mut self.gathering;
        let slot = g.slots.len();
        g.slots.push(Slot {
            name,
            proto: conn.proto,
            reply: None,
        });
        match step {
            Step::Now(reply) => g.slots[slot].reply = Some(reply),
            Step::Write(cmd, answer) => g.writes.push((slot, cmd, answer)),
            Step::Read(op) => g.reads.push((slot, op)),
        }
        Ok(Ok(()))
    }

    /// Whether a read not yet run — of the segment being gathered or of one in flight — reads
    /// one of `keys` (or the whole keyspace).
    fn reads_any(&self, keys: &[Vec<u8>]) -> bool {
        let hit = |read: Option<&[Vec<u8>]>| match read {
            None => true,
            Some(read) => read.iter().any(|k| keys.contains(k)),
        };
        self.gathering.reads.iter().any(|(_, op)| hit(op.keys()))
            || self.reading.iter().flatten().any(|r| hit(r.as_deref()))
    }

    /// End the segment being gathered: queue its writes now, and put it in flight.
    pub(crate) fn send(&mut self) {
        let Gathering {
            mut slots,
            writes,
            reads,
        } = std::mem::take(&mut self.gathering);
        if slots.is_empty() {
            return;
        }
        let shared = self.shared;
        let (places, cmds): (Vec<(usize, Answer)>, Vec<Command>) = writes
            .into_iter()
            .map(|(slot, cmd, answer)| ((slot, answer), cmd))
            .unzip();
        let queued = if cmds.is_empty() {
            Vec::new()
        } else {
            shared.batcher.submit(cmds)
        };
        let before = self.writes_done.take();
        let (done, writes_done) = oneshot::channel();
        self.writes_done = Some(writes_done);
        self.reading.push_back(
            reads
                .iter()
                .map(|(_, op)| op.keys().map(<[Vec<u8>]>::to_vec))
                .collect(),
        );
        self.in_flight.push_back(Box::pin(async move {
            let outcomes =
                futures_util::future::join_all(queued.into_iter().map(Queued::outcome)).await;
            let mut fence: Option<u64> = None;
            for ((slot, answer), outcome) in places.into_iter().zip(outcomes) {
                if let Ok(p) = &outcome {
                    // Index 0: a cluster version that returns no index (0.1 forwarding).
                    if p.log_index > 0 {
                        fence = fence.max(Some(p.log_index));
                    }
                }
                slots[slot].reply = Some(answer.reply(outcome));
            }
            // The earlier segments' writes, which the reads must see too.
            let earlier = match before {
                Some(rx) => rx.await.unwrap_or(None),
                None => None,
            };
            let _ = done.send(fence.max(earlier));
            read(shared, &mut slots, reads, fence, earlier).await;
            slots
        }));
    }

    /// The next segment answered, its replies encoded into `out` (with every segment after it
    /// that is answered too); `None` when none is in flight.
    pub(crate) async fn next_answered(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let slots = self.in_flight.next().await?;
        self.encode(slots, out);
        while let Some(Some(slots)) = self.in_flight.next().now_or_never() {
            self.encode(slots, out);
        }
        Some(())
    }

    fn encode(&mut self, slots: Vec<Slot>, out: &mut Vec<u8>) {
        self.reading.pop_front();
        for slot in slots {
            if let Some(reply) = slot.reply {
                record(self.shared, &slot.name, &reply);
                reply.encode(slot.proto, out);
            }
        }
    }

    /// Wait until every segment in flight is answered, writing their replies to `stream` in
    /// order, while still reading what the client sends into `buf`.
    ///
    /// # Errors
    /// As [`Pipeline::plan`].
    pub(crate) async fn drain<S>(
        &mut self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> std::io::Result<Result<(), Gone>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        while !self.is_idle() {
            if let Err(gone) = self.round(stream, buf, out, Duration::ZERO).await? {
                return Ok(Err(gone));
            }
        }
        Ok(Ok(()))
    }

    /// Wait for whichever comes first: the next answers (written to `stream`, in order), or
    /// what the client sends (read into `buf`: always when nothing is in flight, else up to
    /// [`READ_AHEAD`] and while fewer than [`MAX_SEGMENTS`] segments wait). With nothing in
    /// flight and a non-zero `idle`, the connection is given up after that long without input.
    ///
    /// # Errors
    /// Reading or writing the stream failed (`Err`); the client closed the connection or was
    /// idle too long (`Ok(Err(Gone))`: its queued writes are dropped with the pipeline).
    pub(crate) async fn round<S>(
        &mut self,
        stream: &mut S,
        buf: &mut Vec<u8>,
        out: &mut Vec<u8>,
        idle: Duration,
    ) -> std::io::Result<Result<(), Gone>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let reading = self.is_idle() || (buf.len() < READ_AHEAD && !self.is_full());
        if reading {
            buf.reserve(READ_CHUNK);
        }
        let idle_out = !idle.is_zero() && self.is_idle();
        tokio::select! {
            biased;
            Some(()) = self.next_answered(out) => write_out(stream, out).await?,
            // `read_buf` is cancel safe: what it read is in `buf`. A partial command left at
            // the end of a closed connection is dropped unrun.
            read = stream.read_buf(buf), if reading => {
                if read? == 0 {
                    return Ok(Err(Gone));
                }
            }
            () = tokio::time::sleep(idle), if idle_out => return Ok(Err(Gone)),
        }
        Ok(Ok(()))
    }
}

/// Write what `out` holds to `stream`, flushed, and empty it.
pub(crate) async fn write_out<S>(stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if !out.is_empty() {
        stream.write_all(out).await?;
        stream.flush().await?;
        out.clear();
    }
    Ok(())
}

/// Run a segment's `reads` into their slots, linearizably and after the connection's earlier
/// writes: after its own acknowledged writes (`fence`) when there are any, else after a read
/// barrier; and at least after `earlier` (the earlier segments' writes) — all at one `now`.
async fn read(
    shared: &Shared,
    slots: &mut [Slot],
    reads: Vec<(usize, ReadOp)>,
    fence: Option<u64>,
    earlier: Option<u64>,
) {
    if reads.is_empty() {
        return;
    }
    let cluster = &shared.cluster;
    let ready = if reads.iter().any(|(_, op)| op.needs_barrier()) {
        let ready = match fence {
            Some(_) => Ok(()),
            None => cluster.read_barrier().await,
        };
        Some(match (ready, fence.max(earlier)) {
            (Ok(()), Some(index)) => cluster.applied_at_least(index).await,
            (ready, _) => ready,
        })
    } else {
        None
    };
    let now = now_ms();
    for (slot, op) in reads {
        let reply = match &ready {
            Some(Err(e)) if op.needs_barrier() => no_quorum(e),
            _ => op.run(shared, now),
        };
        slots[slot].reply = Some(reply);
    }
}
