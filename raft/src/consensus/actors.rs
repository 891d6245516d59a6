//! The node's long-lived components as supervised actix actors, on a thread of their own.
//!
//! Each periodic component (the election watcher, the touch flusher, the purger, the
//! cluster-version driver, the peer-name checker, and the web layer's dashboard watcher) is a
//! [`Step`]: a state that does one round of its work and hands back the state for the next
//! round; [`ActorHost`] runs each in a [`Component`] actor. A component driven by messages (the
//! write batcher's replicator, `batcher.rs`) implements [`Supervise`] and handlers on
//! [`Handling`] its wrapper. Both kinds run under an [`actix::Supervisor`], all on one actix
//! `System` on the thread `actors-<id>` (the Raft runtime's threads stay with openraft; the
//! HTTP workers with actix-web).
//!
//! A panic inside a step is caught (`catch_unwind` on the step's future), logged at ERROR with
//! its message, counted in `sessionraft_actor_restarts_total{actor}` (and in `/cluster/status`),
//! and ends the actor's context; the supervisor then restarts it with a fresh state from its
//! factory: the component carries on, and nothing else on the node notices. Without this a
//! panicking background task died silently and its work stopped for good.
//!
//! Mailboxes are bounded ([`MAILBOX`]): a message to a full mailbox waits (`send`) or is refused
//! (`try_send`). The components' own rhythm is not mail: each schedules its next step on its
//! context after the previous one ends, so a slow step delays the next instead of piling up.
//!
//! Test switch: [`InjectPanic`] makes the actor panic at once, through the same path as a panic
//! in a step. The web layer exposes it only with `SESSIONRAFT_UNSAFE_ACTOR_PANICS=1`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;

use crate::consensus::instruments::Instruments;

/// The most messages an actor's mailbox holds.
pub const MAILBOX: usize = 16;

/// One round of a component's work: the state for the next round, or `None` when what it
/// serves is gone (the node is stopping), after which it takes no more steps.
pub type StepFuture<S> = Pin<Box<dyn Future<Output = Option<S>>>>;

/// A long-lived component of the node, run by a [`Component`] actor.
pub trait Step: Sized + Unpin + 'static {
    /// The actor's name: the `actor` label of `sessionraft_actor_restarts_total` and the name
    /// [`ActorHost::inject_panic`] takes.
    const NAME: &'static str;

    /// How long to wait before the first step, and after each step before the next.
    fn pause(&self) -> Duration;

    /// One round of work.
    fn step(self) -> StepFuture<Self>;
}

/// Test switch: the actor panics at once (caught, counted and restarted like any panic).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct InjectPanic;

/// Runs a [`Step`] again and again; restarted with a fresh state after a panic.
pub struct Component<S: Step> {
    make: Box<dyn Fn() -> S>,
    state: Option<S>,
    instruments: Arc<Instruments>,
}

impl<S: Step> Component<S> {
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        let pause = self.state.get_or_insert_with(|| (self.make)()).pause();
        ctx.run_later(pause, |act, ctx| act.run_step(ctx));
    }

    fn run_step(&mut self, ctx: &mut Context<Self>) {
        let Some(state) = self.state.take() else {
            return;
        };
        self.supervise(state.step(), ctx);
    }

    /// Runs `fut` on this actor's context; a panic in it restarts the actor.
    fn supervise(&mut self, fut: StepFuture<S>, ctx: &mut Context<Self>) {
        let caught = AssertUnwindSafe(fut).catch_unwind();
        ctx.spawn(
            caught
                .into_actor(self)
                .map(|outcome, act, ctx| match outcome {
                    Ok(Some(next)) => {
                        act.state = Some(next);
                        act.schedule(ctx);
                    }
                    Ok(None) => {
                        tracing::debug!(actor = S::NAME, "what it serves is gone: no more steps")
                    }
                    Err(panic) => {
                        report_panic(S::NAME, &panic, &act.instruments);
                        ctx.stop();
                    }
                }),
        );
    }
}

/// Logs and counts a panic of the actor `name` (which then stops, to be restarted).
fn report_panic(name: &'static str, panic: &Panic, instruments: &Instruments) {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    instruments.actor_restarted(name);
    tracing::error!(actor = name, panic = %what, "actor panicked: restarting it");
}

/// What a caught panic carries.
pub type Panic = Box<dyn std::any::Any + Send>;

/// A component driven by messages rather than by its own rhythm, run in a [`Handling`] actor:
/// its handlers catch panics in their work and call [`Handling::panicked`]; the actor is then
/// restarted, keeping this state, after [`Supervise::restarted`] repaired it.
pub trait Supervise: Unpin + 'static {
    /// The actor's name (as [`Step::NAME`]).
    const NAME: &'static str;

    /// Called when the actor restarts after a panic: put right what the interrupted work left
    /// half done.
    fn restarted(&mut self);
}

/// The actor around a [`Supervise`] component; its message handlers are implemented beside
/// the component.
pub struct Handling<T: Supervise> {
    pub inner: T,
    instruments: Arc<Instruments>,
}

impl<T: Supervise> Handling<T> {
    /// A handler's work panicked: logged, counted, and the actor restarted.
    pub fn panicked(&mut self, panic: &Panic, ctx: &mut Context<Self>) {
        report_panic(T::NAME, panic, &self.instruments);
        ctx.stop();
    }
}

impl<T: Supervise> Actor for Handling<T> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
    }
}

impl<T: Supervise> Supervised for Handling<T> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.inner.restarted();
    }
}

impl<T: Supervise> Handler<InjectPanic> for Handling<T> {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        let panicking = AssertUnwindSafe(async {
            panic!("{}: injected panic (test switch)", T::NAME);
        })
        .catch_unwind();
        ctx.spawn(panicking.into_actor(self).map(|outcome, act, ctx| {
            if let Err(panic) = outcome {
                act.panicked(&panic, ctx);
            }
        }));
    }
}

impl<S: Step> Actor for Component<S> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.schedule(ctx);
    }
}

impl<S: Step> Supervised for Component<S> {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // `started` runs next and makes a fresh state: whatever the panic left is gone.
        self.state = None;
    }
}

impl<S: Step> Handler<InjectPanic> for Component<S> {
    type Result = ();

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) {
        // In flight or not, the current step is dropped with the context.
        self.state = None;
        self.supervise(
            Box::pin(async { panic!("{}: injected panic (test switch)", S::NAME) }),
            ctx,
        );
    }
}

/// The actix `System` that runs a node's actors, on the thread `actors-<id>`.
pub struct ActorHost {
    system: actix::System,
    arbiter: actix::dev::ArbiterHandle,
    thread: Option<JoinHandle<()>>,
    instruments: Arc<Instruments>,
    started: PanicSwitch,
}

/// The actors started, by name.
type Started = Vec<(&'static str, Recipient<InjectPanic>)>;

/// The actors of a node by name, to make one panic (test switch; see [`InjectPanic`]).
#[derive(Clone, Default)]
pub struct PanicSwitch(Arc<std::sync::Mutex<Started>>);

impl PanicSwitch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Started> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the actor `name` panic; false when no actor has that name or its mailbox is full.
    pub fn inject(&self, name: &str) -> bool {
        let started = self.lock();
        let mut found = false;
        for (_, r) in started.iter().filter(|(n, _)| *n == name) {
            found = true;
            if r.try_send(InjectPanic).is_err() {
                return false;
            }
        }
        found
    }

    /// The names of the actors, in the order they started.
    pub fn names(&self) -> Vec<&'static str> {
        self.lock().iter().map(|(n, _)| *n).collect()
    }
}

impl std::fmt::Debug for ActorHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActorHost")
            .field("actors", &self.names())
            .finish_non_exhaustive()
    }
}

impl ActorHost {
    /// Starts the actors' thread (`actors-<id>`) and its `System`.
    ///
    /// # Errors
    /// The thread could not be spawned.
    pub fn start(id: u64, instruments: Arc<Instruments>) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(format!("actors-{id}"))
            .spawn(move || {
                let runner = actix::System::new();
                let _ = tx.send((actix::System::current(), actix::Arbiter::current()));
                if let Err(e) = runner.run() {
                    tracing::warn!(error = %e, "the actors' system stopped with an error");
                }
            })?;
        let (system, arbiter) = rx
            .recv()
            .map_err(|_| std::io::Error::other("the actors' thread exited at start"))?;
        Ok(Self {
            system,
            arbiter,
            thread: Some(thread),
            instruments,
            started: PanicSwitch::default(),
        })
    }

    /// Starts a supervised actor running `make()`'s steps; `make` is called again for a
    /// fresh state after each panic.
    pub fn start_actor<S: Step>(&self, make: impl Fn() -> S + Send + 'static) {
        self.instruments.actor_started(S::NAME);
        let instruments = self.instruments.clone();
        let addr = actix::Supervisor::start_in_arbiter(&self.arbiter, move |_| Component {
            make: Box::new(make),
            state: None,
            instruments,
        });
        self.started.lock().push((S::NAME, addr.recipient()));
    }

    /// Starts a supervised actor around `make()`'s component (made once: it survives restarts)
    /// and returns its address.
    pub fn start_handler<T: Supervise>(
        &self,
        make: impl FnOnce() -> T + Send + 'static,
    ) -> Addr<Handling<T>> {
        self.instruments.actor_started(T::NAME);
        let instruments = self.instruments.clone();
        let addr = actix::Supervisor::start_in_arbiter(&self.arbiter, move |_| Handling {
            inner: make(),
            instruments,
        });
        self.started
            .lock()
            .push((T::NAME, addr.clone().recipient()));
        addr
    }

    /// The names of the actors started, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.started.names()
    }

    /// Test switch: makes the actor `name` panic (see [`InjectPanic`]); false when no actor
    /// has that name or its mailbox is full.
    pub fn inject_panic(&self, name: &str) -> bool {
        self.started.inject(name)
    }

    /// The same switch, for whoever outlives a borrow of the host (the admin API).
    pub fn panic_switch(&self) -> PanicSwitch {
        self.started.clone()
    }

    /// Stops every actor and waits for the thread to end.
    pub fn stop(&mut self) {
        self.started.lock().clear();
        self.system.stop();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the actors' thread panicked while stopping");
            }
        }
    }
}

impl Drop for ActorHost {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Counts its steps in a shared counter; its state counts steps since it was made.
    struct Counter {
        total: Arc<AtomicU32>,
        since_made: u32,
    }

    impl Step for Counter {
        const NAME: &'static str = "counter";
        fn pause(&self) -> Duration {
            Duration::from_millis(5)
        }
        fn step(mut self) -> StepFuture<Self> {
            Box::pin(async move {
                self.total.fetch_add(1, Ordering::SeqCst);
                self.since_made += 1;
                // The third step of every state panics: the actor must be restarted each time.
                assert!(self.since_made < 3, "third step");
                Some(self)
            })
        }
    }

    fn wait_for(what: &str, ok: impl Fn() -> bool) {
        let t = std::time::Instant::now();
        while !ok() {
            assert!(t.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_panicking_step_restarts_the_actor_with_a_fresh_state_and_is_counted() {
        let instruments = Arc::new(Instruments::new());
        let mut host = ActorHost::start(1, instruments.clone()).expect("host");
        let total = Arc::new(AtomicU32::new(0));
        let t = total.clone();
        host.start_actor(move || Counter {
            total: t.clone(),
            since_made: 0,
        });
        // 3 restarts: 9 steps (each state takes 3, the last of which panics), and more after.
        wait_for("three restarts", || {
            instruments.actor_restarts("counter") >= 3
        });
        wait_for("steps after the restarts", || {
            total.load(Ordering::SeqCst) >= 10
        });
        assert_eq!(host.names(), vec!["counter"]);
        host.stop();
    }

    struct Idle;

    impl Step for Idle {
        const NAME: &'static str = "idle";
        fn pause(&self) -> Duration {
            Duration::from_secs(3600)
        }
        fn step(self) -> StepFuture<Self> {
            Box::pin(async { Some(self) })
        }
    }

    /// Handles `Work(n)`: panics for n = 0; counts its restarts in `repaired`.
    struct Worker {
        done: Arc<AtomicU32>,
        repaired: Arc<AtomicU32>,
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct Work(u32);

    impl Supervise for Worker {
        const NAME: &'static str = "worker";
        fn restarted(&mut self) {
            self.repaired.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Handler<Work> for Handling<Worker> {
        type Result = ();
        fn handle(&mut self, Work(n): Work, ctx: &mut Self::Context) {
            let done = self.inner.done.clone();
            let work = AssertUnwindSafe(async move {
                assert!(n > 0, "work 0 panics");
                done.fetch_add(n, Ordering::SeqCst);
            })
            .catch_unwind();
            ctx.spawn(work.into_actor(self).map(|outcome, act, ctx| {
                if let Err(p) = outcome {
                    act.panicked(&p, ctx);
                }
            }));
        }
    }

    #[test]
    fn a_panicking_handler_restarts_the_actor_which_keeps_its_state_and_serves_on() {
        let instruments = Arc::new(Instruments::new());
        let host = ActorHost::start(3, instruments.clone()).expect("host");
        let (done, repaired) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (d, r) = (done.clone(), repaired.clone());
        let addr = host.start_handler(move || Worker {
            done: d,
            repaired: r,
        });
        addr.do_send(Work(1));
        wait_for("the first work", || done.load(Ordering::SeqCst) == 1);
        addr.do_send(Work(0));
        wait_for("the restart", || repaired.load(Ordering::SeqCst) == 1);
        assert_eq!(instruments.actor_restarts("worker"), 1);
        addr.do_send(Work(2));
        wait_for("work after the restart", || {
            done.load(Ordering::SeqCst) == 3
        });
        assert!(host.inject_panic("worker"));
        wait_for("the injected restart", || {
            repaired.load(Ordering::SeqCst) == 2
        });
        assert_eq!(instruments.actor_restarts("worker"), 2);
    }

    #[test]
    fn an_injected_panic_restarts_at_once_and_an_unknown_name_is_refused() {
        let instruments = Arc::new(Instruments::new());
        let host = ActorHost::start(2, instruments.clone()).expect("host");
        host.start_actor(|| Idle);
        assert!(!host.inject_panic("nobody"));
        assert!(host.inject_panic("idle"));
        wait_for("the restart", || instruments.actor_restarts("idle") == 1);
        assert!(host.inject_panic("idle"));
        wait_for("the second restart", || {
            instruments.actor_restarts("idle") == 2
        });
        drop(host);
    }
}
